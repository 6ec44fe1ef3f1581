"""extract-pose at scale: job arrays that cannot lose a video, lost workers, native crashes,
workers that outlive their parent, odd file names, model complexity, streamed landmarks.

Real MediaPipe on tiny videos (a few frames of the bundled sample, small), real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sldata.extract import ExtractOptions, read_video_list, run_extraction, shard_of, shard_videos
from sldata.extract.holistic import HolisticOptions
from sldata.extract.spool import FrameSpool, write_spooled_pkl
from sldata.errors import UserError
from sldata.io import TMP_MARK
from sldata.pose import PoseSample, load_pkl, save_pkl
from tests.conftest import BIN, assert_no_traceback, invoke_cli, run_cli

SAMPLE = Path(__file__).parent / "data" / "astronaut.mp4"


def _sample_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(SAMPLE))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


FRAMES = _sample_frames()


def tiny(dst: Path | bytes, frames: int = 3, size: int = 96, start: int = 0) -> Path | bytes:
    """A small mp4 of `frames` frames of the sample (from `start`), `size` pixels square."""
    name = os.fsdecode(dst)
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    tmp = str(Path(name).parent / f".tiny-{os.getpid()}.mp4")  # cv2 cannot write a non-UTF-8 name
    w = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (size, size))
    for k in range(frames):
        w.write(cv2.resize(FRAMES[(start + k) % len(FRAMES)], (size, size)))
    w.release()
    os.replace(tmp, name)
    return dst


def pkls(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("*.pkl"))


def same_pose(a: Path, b: Path) -> bool:
    x, y = load_pkl(a), load_pkl(b)
    return np.array_equal(x.keypoints, y.keypoints) and np.array_equal(x.confidences, y.confidences)


# --- job arrays ----------------------------------------------------------------------------

def test_shard_of_is_stable_and_independent_of_the_other_videos() -> None:
    import hashlib

    rel = "signer3/clip_0007.mp4"
    want = int.from_bytes(hashlib.blake2b(rel.encode(), digest_size=8).digest(), "big") % 7
    assert shard_of(rel, 7) == want  # the documented rule, so other tools can reproduce it
    names = [Path(f"d{i % 4}/v{i:03d}.mp4") for i in range(200)]
    parts = [shard_videos(names, 5, i) for i in range(5)]
    assert sorted(p for part in parts for p in part) == sorted(names)  # disjoint and complete
    assert all(25 <= len(p) for p in parts)  # roughly balanced
    more = names + [Path("d0/aaa.mp4"), Path("zzz.mp4")]
    for i in range(5):  # adding videos moves no other video
        assert [p for p in shard_videos(more, 5, i) if p in names] == parts[i]
    assert shard_of(os.fsdecode(b"caf\xe9.mp4"), 3) == int.from_bytes(
        hashlib.blake2b(b"caf\xe9.mp4", digest_size=8).digest(), "big") % 3


def _name_in_task(task: int, k: int, prefix: str) -> str:
    return next(n for n in (f"{prefix}{j}.mp4" for j in range(100)) if shard_of(n, k) == task)


def test_job_array_with_a_video_added_between_tasks_loses_none(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "poses"
    for i in range(13):
        tiny(videos / f"s{i % 3}" / f"v{i:02d}.mp4", frames=2, size=64, start=i)
    late_done = _name_in_task(2, 3, "new")   # its task runs after it arrives
    late_missed = _name_in_task(0, 3, "old")  # its task already ran
    seen: list[str] = []
    for task in range(3):
        if task == 1:  # videos arrive while the array runs: with index-based splits 4 of 13 were lost
            tiny(videos / late_done, frames=2, size=64)
            tiny(videos / late_missed, frames=2, size=64)
        rep = run_extraction(videos, out, num_shards=3, shard_index=task, workers=1, in_process=True)
        assert rep.ok and rep.shard == (task, 3)
        seen += [p for p in pkls(out) if p not in seen]
    assert pkls(out) == sorted([f"v{i:02d}.pkl" for i in range(13)] + [late_done.replace(".mp4", ".pkl")])
    # The one video whose task had already run is named by the final check; rerunning its task fixes it.
    proc = invoke_cli("sldata", "validate", out, "--videos", videos, "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    assert [(e["code"], e["video"]) for e in json.loads(proc.stdout)["errors"]] == [("pose-missing", late_missed)]
    rep = run_extraction(videos, out, num_shards=3, shard_index=0, workers=1, in_process=True)
    assert rep.extracted == 1 and rep.skipped == rep.total - 1
    assert invoke_cli("sldata", "validate", out, "--videos", videos).returncode == 0


def test_validate_videos_reports_every_missing_pose_with_its_last_failure(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "poses"
    tiny(videos / "good.mp4")
    (videos / "broken.mp4").write_bytes(b"not a video at all" * 10)
    rep = run_extraction(videos, out, workers=1, in_process=True)
    assert rep.extracted == 1 and [f["video"] for f in rep.failed] == ["broken.mp4"]
    tiny(videos / "late" / "new.mp4")  # never attempted
    proc = invoke_cli("sldata", "validate", out, "--videos", videos, "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    errors = {e["video"]: e for e in json.loads(proc.stdout)["errors"]}
    assert set(errors) == {"broken.mp4", "late/new.mp4"} and {e["code"] for e in errors.values()} == {"pose-missing"}
    assert errors["broken.mp4"]["message"].startswith("no complete pose; its last attempt failed: cannot open")
    assert "no failure recorded" in errors["late/new.mp4"]["message"]
    # A pose folder where nothing succeeded yet is still checked (not "unknown layout").
    empty = tmp_path / "nothing"
    empty.mkdir()
    proc = invoke_cli("sldata", "validate", empty, "--videos", videos)
    assert proc.returncode == 1 and "pose-missing" in proc.stdout and "3" in proc.stdout
    # The packed h5 is checked the same way, by key.
    (videos / "broken.mp4").unlink()
    (videos / "late" / "new.mp4").unlink()
    h5 = tmp_path / "poses.h5"
    assert invoke_cli("sldata", "pkl2h5", out, "-o", h5).returncode == 0
    proc = invoke_cli("sldata", "validate", h5, "--videos", videos)
    assert proc.returncode == 0, proc.stdout


def test_list_freezes_the_input(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "poses"
    for name in ("a.mp4", "sub/b.mp4", "c.mp4"):
        tiny(videos / name, frames=2, size=64)
    listing = tmp_path / "videos.txt"
    listing.write_text(f"# frozen on Monday\na.mp4\n\n{videos / 'sub' / 'b.mp4'}\r\nsub/../a.mp4\nmissing.mp4\n")
    assert [p.relative_to(videos).as_posix() for p in read_video_list(listing, videos)] == \
        ["a.mp4", "missing.mp4", "sub/b.mp4"]
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--list", listing, "--workers", "1", "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 1  # the listed video that is gone is a recorded failure, the rest is done
    rep = json.loads(proc.stdout)
    assert rep["total"] == 3 and rep["extracted"] == 2
    assert rep["failed"] == [{"video": "missing.mp4", "reason": "no such file (listed, but not found)"}]
    assert pkls(out) == ["a.pkl", "b.pkl"]  # c.mp4 is not listed
    for bad, needle in ((f"{tmp_path}/elsewhere.mp4\n", "is not under"), ("../x.mp4\n", "is not under"),
                        ("notes.txt\n", "is not a video"), ("# nothing\n", "lists no videos")):
        listing.write_text(bad)
        proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--list", listing)
        assert_no_traceback(proc)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr


# --- lost workers, native crashes, parent death ------------------------------------------------

def _spool_pids(out: Path, stem: str) -> set[int]:
    """pids of the workers writing `stem` now: the spool's temporary name carries the writer's pid."""
    import re

    pids = set()
    for p in out.glob(f"{stem}.keypoints{TMP_MARK}*"):
        m = re.search(r"(\d+)-[0-9a-f]{8}$", p.name)
        if m:
            pids.add(int(m.group(1)))
    return pids


def kill_worker_of(out: Path, stem: str, avoid: set[int], deadline: float) -> int:
    """SIGKILL the worker that is extracting `stem` (one not in `avoid`); return its pid."""
    while time.monotonic() < deadline:
        for pid in _spool_pids(out, stem) - avoid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            return pid
        time.sleep(0.01)
    raise AssertionError(f"no worker ever started on {stem}")


def test_local_worker_killed_mid_video_is_retried_then_recorded(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "poses"
    for i in range(4):
        tiny(videos / f"v{i}.mp4", frames=12, size=128, start=i)
    proc = subprocess.Popen([str(BIN / "sldata"), "extract-pose", str(videos), "-o", str(out), "--workers", "2",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        first = kill_worker_of(out, "v0", set(), deadline)   # v0 twice: recorded as failed
        kill_worker_of(out, "v1", set(), deadline)           # v1 once: its retry succeeds
        kill_worker_of(out, "v0", {first}, deadline)         # (both start at once, on the two workers)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert "Traceback" not in stderr
    assert proc.returncode == 1, stderr
    rep = json.loads(stdout)
    assert rep["extracted"] == 3 and [f["video"] for f in rep["failed"]] == ["v0.mp4"]
    assert rep["failed"][0]["reason"].startswith("worker process died on each of 2 attempts (killed by SIGKILL)")
    assert json.loads((out / "failures.jsonl").read_text()) == rep["failed"][0]
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "v1.pkl", "v2.pkl", "v3.pkl"]  # no temporaries
    ref = run_extraction(videos / "v1.mp4", tmp_path / "ref", workers=1, in_process=True)
    assert ref.ok and same_pose(out / "v1.pkl", tmp_path / "ref" / "v1.pkl")  # the retry's output is exact


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; only its parent-to-be has not reaped it


def test_workers_exit_when_the_main_process_is_killed(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "poses"
    for i in range(4):
        tiny(videos / f"v{i}.mp4", frames=200, size=160, start=i)  # busy far longer than the 5 s allowed
    proc = subprocess.Popen([str(BIN / "sldata"), "extract-pose", str(videos), "-o", str(out), "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            workers = {int(c) for c in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()}
            time.sleep(0.05)
        assert len(workers) == 2
        while not any(_spool_pids(out, f"v{i}") for i in range(4)) and time.monotonic() < deadline:
            time.sleep(0.02)  # they are at work
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone_by = time.monotonic() + 5
        while any(_alive(p) for p in workers) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), "workers outlived the killed main process"
    finally:
        proc.kill()


def test_non_utf8_file_names_extract_and_report(tmp_path: Path) -> None:
    # cv2.VideoCapture segfaulted on such a path, killing the whole run without a message.
    videos = tmp_path / "videos"
    tiny(os.path.join(os.fsencode(videos), b"caf\xe9.mp4"), frames=3)
    tiny(videos / "plain.mp4", frames=3)
    Path(os.fsdecode(os.path.join(os.fsencode(videos), b"bad\xff.mkv"))).write_bytes(b"garbage" * 100)
    out = tmp_path / "poses"
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--workers", "2")
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    assert "2 extracted" in proc.stdout and "failed bad\\xff.mkv: cannot open" in proc.stderr  # printable
    assert json.loads((out / "failures.jsonl").read_text())["video"] == "bad\\xff.mkv"
    names = sorted(os.listdir(os.fsencode(out)))
    assert names == [b"caf\xe9.pkl", b"failures.jsonl", b"plain.pkl"]  # the pkl keeps the name's bytes
    cafe = Path(os.fsdecode(os.path.join(os.fsencode(out), b"caf\xe9.pkl")))
    got = load_pkl(cafe)
    assert got.keypoints.shape == (3, 75, 3) and got.extra["meta"]["source"] == "caf\\xe9.mp4"
    assert same_pose(cafe, out / "plain.pkl")  # the same frames as plain.mp4
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--json")  # rerun: resumes; JSON is valid UTF-8
    assert_no_traceback(proc)
    rep = json.loads(proc.stdout)
    assert rep["skipped"] == 2 and rep["failed"] == [{"video": "bad\\xff.mkv", "reason": rep["failed"][0]["reason"]}]
    proc = invoke_cli("sldata", "validate", out, "--videos", videos, "--json")
    assert_no_traceback(proc)
    assert [e["video"] for e in json.loads(proc.stdout)["errors"]] == ["bad\\xff.mkv"]


# --- model complexity, streamed landmarks ------------------------------------------------------

def test_model_complexity_option(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    tiny(videos / "a.mp4", frames=2, size=64)
    out = tmp_path / "poses"
    import mediapipe

    folder = Path(mediapipe.__file__).parent / "modules" / "pose_landmark"
    for c, model in ((0, "pose_landmark_lite.tflite"), (2, "pose_landmark_heavy.tflite")):
        if (folder / model).exists():
            continue  # installed by hand: then it simply works
        proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--model-complexity", str(c))
        assert_no_traceback(proc)
        assert proc.returncode == 2
        msg = " ".join(proc.stderr.split())
        assert f"--model-complexity {c} needs MediaPipe's {model}" in msg and "never downloads models" in msg
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--model-complexity", "3")
    assert proc.returncode == 2 and "must be 0, 1 or 2" in proc.stderr
    assert not out.exists()  # refused before any work
    h5 = tmp_path / "p.h5"
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--model-complexity", "1", "--h5", h5, "--json")
    assert proc.returncode == 0, proc.stderr
    assert load_pkl(out / "a.pkl").extra["meta"]["options"]["model_complexity"] == 1
    from sldata.pose import PoseH5

    with PoseH5(h5) as p:
        assert json.loads(p.attrs["extraction_options"])["model_complexity"] == 1
    # The complexity is part of the options hash: a pkl made with another one is redone, not resumed.
    assert ExtractOptions(holistic=HolisticOptions(model_complexity=2)).hash() != ExtractOptions().hash()


def test_spooled_pkl_is_byte_identical_to_save_pkl(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    kp = rng.random((600, 75, 3), dtype=np.float32)  # more than two spool blocks
    conf = rng.random((600, 75), dtype=np.float32)
    extra = {"meta": {"options_hash": "0123456789abcdef", "source": "x.mp4"}}
    with FrameSpool(tmp_path / "a.pkl", 75) as spool:
        for i in range(len(kp)):
            spool.append(kp[i], conf[i])
        write_spooled_pkl(tmp_path / "a.pkl", spool, fps=29.97, width=720, height=540, extra=extra)
    save_pkl(tmp_path / "b.pkl", PoseSample(kp, conf, fps=29.97, width=720, height=540, extra=extra))
    assert (tmp_path / "a.pkl").read_bytes() == (tmp_path / "b.pkl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pkl", "b.pkl"]  # spool files removed
    with pytest.raises(UserError, match="num-shards"):
        shard_videos([], 0, 0)
