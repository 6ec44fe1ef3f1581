"""extract-pose: real MediaPipe Holistic on the bundled clip, resume, failures, shards, collisions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from sldata.errors import UserError
from sldata.extract import ExtractOptions, run_extraction, shard_of, shard_videos
from sldata.extract.holistic import frame_arrays
from sldata.extract.run import is_complete
from sldata.pose import KEYPOINT_SETS, PoseH5, load_pkl
from tests.conftest import BIN, assert_no_traceback, run_cli

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "astronaut.mp4"


def clip(dst: Path, frames: int, fourcc: str = "mp4v", src: Path = SAMPLE) -> Path:
    """The first `frames` frames of the sample, re-encoded (a shorter video for cheap tests)."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, (288, 288))
    for _ in range(frames):
        ok, frame = cap.read()
        assert ok
        writer.write(frame)
    writer.release()
    cap.release()
    return dst


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    shutil.copy(SAMPLE, root / "astronaut.mp4")
    clip(root / "sub" / "short.mkv", 10)
    return root


@pytest.fixture(scope="module")
def extracted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """One in-process run (1 worker: both videos through the same Holistic graph)."""
    out = tmp_path_factory.mktemp("poses")
    report = run_extraction(corpus, out, workers=1)
    return out, report


def test_body_pose_detected_on_real_video(extracted: tuple[Path, object]) -> None:
    out, report = extracted
    assert report.ok and report.extracted == 2 and report.frames == 40 and report.failed == []
    s = load_pkl(out / "astronaut.pkl")
    assert s.keypoints.shape == (30, 75, 3) and s.confidences.shape == (30, 75)
    assert s.keypoints.dtype == np.float32 and s.confidences.dtype == np.float32
    assert s.fps == 12.0 and (s.width, s.height) == (288, 288)
    body = s.confidences[:, :33]
    detected = (body > 0).all(axis=1)
    assert detected.mean() >= 0.8
    # Shoulders (11, 12) and nose (0) are clearly visible in the photo, inside the image.
    assert (body[detected][:, [0, 11, 12]] > 0.5).all()
    xy = s.keypoints[detected][:, [0, 11, 12], :2]
    assert ((xy > 0) & (xy < 1)).all()
    # A part that is absent is exactly zeros with confidence 0 (the photo shows no hands).
    absent = s.confidences == 0
    assert np.array_equal(s.keypoints[absent], np.zeros((absent.sum(), 3), np.float32))
    meta = s.extra["meta"]
    assert meta["options_hash"] == ExtractOptions().hash() and meta["source"] == "astronaut.mp4"
    assert meta["mediapipe_version"] == "0.10.21" and meta["keypoint_set"] == "openhands75"
    assert (out / "failures.jsonl").read_bytes() == b""


def test_holistic543_detects_face_and_keeps_pose_identical(extracted: tuple[Path, object],
                                                           tmp_path: Path) -> None:
    out, _ = extracted
    video = clip(tmp_path / "v" / "short.mkv", 10)
    report = run_extraction(video, tmp_path / "p543", options=ExtractOptions(keypoints="holistic543"), workers=1)
    assert report.ok
    s = load_pkl(tmp_path / "p543" / "short.pkl")
    assert s.keypoints.shape == (10, 543, 3)
    face = s.confidences[:, 33:501]
    assert ((face == 1.0).all(axis=1)).mean() >= 0.8
    assert ((s.keypoints[:, 33:501, :2] > 0) & (s.keypoints[:, 33:501, :2] < 1))[face == 1].all()
    # The keypoint set only changes the layout: the body is bit-identical to openhands75's.
    ref = load_pkl(out / "short.pkl")
    assert np.array_equal(s.keypoints[:, :33], ref.keypoints[:, :33])
    assert np.array_equal(s.confidences[:, :33], ref.confidences[:, :33])


def test_result_does_not_depend_on_the_previous_video(extracted: tuple[Path, object], corpus: Path,
                                                      tmp_path: Path) -> None:
    # In the fixture, short.mkv went through the graph right after astronaut.mp4; alone, it
    # must give the same bits (the graph is reset between videos). A single file is a valid input.
    out, _ = extracted
    run_extraction(corpus / "sub" / "short.mkv", tmp_path / "alone", workers=1)
    a, b = load_pkl(tmp_path / "alone" / "short.pkl"), load_pkl(out / "short.pkl")
    assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.confidences, b.confidences)
    assert a.extra["meta"]["source"] == "short.mkv" and b.extra["meta"]["source"] == "sub/short.mkv"


def _landmarks(n: int, offset: float, visibility: bool = False):
    from mediapipe.framework.formats import landmark_pb2

    lst = landmark_pb2.NormalizedLandmarkList()
    for i in range(n):
        lm = lst.landmark.add(x=offset + i / 100, y=offset + i / 200, z=-i / 1000)
        if visibility:
            lm.visibility = 0.5 + i / 100
    return lst


@pytest.mark.parametrize("kset_name", ["openhands75", "holistic543"])
def test_hand_slots_layout(kset_name: str) -> None:
    # No licence-clean offline video shows hands: the hand slots are checked on real
    # landmark_pb2 lists built here, as Holistic returns them.
    kset = KEYPOINT_SETS[kset_name]
    pose, left = _landmarks(33, 0.1, visibility=True), _landmarks(21, 0.3)
    results = SimpleNamespace(pose_landmarks=pose, left_hand_landmarks=left, right_hand_landmarks=None,
                              face_landmarks=None)
    kp, conf = frame_arrays(results, kset)
    lo, hi = kset.parts["left_hand"]
    ro, rhi = kset.parts["right_hand"]
    assert (lo, hi, ro, rhi) == ((33, 54, 54, 75) if kset_name == "openhands75" else (501, 522, 522, 543))
    assert np.array_equal(kp[lo:hi], np.array([[lm.x, lm.y, lm.z] for lm in left.landmark], np.float32))
    assert (conf[lo:hi] == 1.0).all()
    assert not kp[ro:rhi].any() and not conf[ro:rhi].any()
    assert np.array_equal(conf[:33], np.array([lm.visibility for lm in pose.landmark], np.float32))
    assert np.array_equal(kp[:33], np.array([[lm.x, lm.y, lm.z] for lm in pose.landmark], np.float32))
    if "face" in kset.parts:
        assert not kp[33:501].any() and not conf[33:501].any()
    # Swap: the subject's right hand only.
    kp2, conf2 = frame_arrays(SimpleNamespace(pose_landmarks=None, left_hand_landmarks=None,
                                              right_hand_landmarks=left, face_landmarks=None), kset)
    assert np.array_equal(kp2[ro:rhi], kp[lo:hi]) and (conf2[ro:rhi] == 1).all()
    assert not kp2[:ro].any() and not conf2[:ro].any()


def test_cli_two_workers_h5_matches_pkls_and_validates(extracted: tuple[Path, object], corpus: Path,
                                                       tmp_path: Path) -> None:
    from sldata.validate import validate

    ref, _ = extracted
    out, h5 = tmp_path / "poses", tmp_path / "poses.h5"
    proc = run_cli("sldata", "extract-pose", corpus, "-o", out, "--workers", "2", "--h5", h5, "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["extracted"] == 2 and rep["skipped"] == 0 and rep["frames"] == 40 and rep["h5"]["packed"] == 2
    for stem in ("astronaut", "short"):  # a process pool gives the same bits as one in-process graph
        a, b = load_pkl(out / f"{stem}.pkl"), load_pkl(ref / f"{stem}.pkl")
        assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.confidences, b.confidences)
    with PoseH5(h5) as p:
        assert p.keys() == ["astronaut", "short"]
        assert np.array_equal(p.keypoints("astronaut"), load_pkl(ref / "astronaut.pkl").keypoints)
        assert p.video_attrs("short") == {"fps": 12.0, "width": 288, "height": 288, "num_frames": 10,
                                          "source": "sub/short.mkv"}
        assert p.attrs["mediapipe_version"] == "0.10.21"
        assert json.loads(p.attrs["extraction_options"]) == ExtractOptions().as_dict()
    assert validate(h5).ok
    # Rerun: everything is complete with the same options, nothing is redone.
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")}
    proc = run_cli("sldata", "extract-pose", corpus, "-o", out, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["skipped"] == 2
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")} == before


def test_is_complete_requires_same_options(extracted: tuple[Path, object], tmp_path: Path) -> None:
    out, _ = extracted
    pkl = out / "astronaut.pkl"
    assert is_complete(pkl, ExtractOptions().hash())
    assert not is_complete(pkl, ExtractOptions(keypoints="holistic543").hash())
    assert ExtractOptions().hash() != ExtractOptions(keypoints="holistic543").hash()
    foreign = tmp_path / "astronaut.pkl"  # an OpenHands pkl: no recorded options, so it is redone
    import pickle
    s = load_pkl(pkl)
    foreign.write_bytes(pickle.dumps({"keypoints": s.keypoints, "confidences": s.confidences}))
    assert not is_complete(foreign, ExtractOptions().hash())
    data = pkl.read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[:-1])  # a pkl missing its last byte is not trusted
    assert not is_complete(tmp_path / "cut.pkl", ExtractOptions().hash())
    assert not is_complete(tmp_path / "missing.pkl", ExtractOptions().hash())


def _truncated_avi(dst: Path, frames: int = 12) -> Path:
    full = clip(dst.with_name("full.avi"), frames, fourcc="MJPG")
    data = full.read_bytes()
    full.unlink()
    dst.write_bytes(data[: int(len(data) * 0.6)])  # the header still says `frames`
    return dst


def test_bad_videos_go_to_failures_and_the_run_goes_on(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    clip(videos / "good.mp4", 6)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "junk.webm").write_bytes(os.urandom(4096))
    _truncated_avi(videos / "cut.avi")
    (videos / "notes.txt").write_text("not a video")
    out = tmp_path / "poses"
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--workers", "1")
    assert_no_traceback(proc)
    assert proc.returncode == 1
    assert "1 extracted" in proc.stdout and "3 failed" in proc.stdout
    records = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    reasons = {r["video"]: r["reason"] for r in records}
    assert list(reasons) == ["cut.avi", "empty.mp4", "junk.webm"]
    assert reasons["empty.mp4"] == "empty file (0 bytes)"
    assert reasons["junk.webm"].startswith("cannot open")
    assert reasons["cut.avi"].startswith("decoding stopped at frame ") and reasons["cut.avi"].endswith(
        "of 12 (corrupt or truncated stream)")
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "good.pkl"]
    # Fix the inputs and rerun: the good one is skipped, failures.jsonl is rewritten empty.
    for name in ("empty.mp4", "junk.webm", "cut.avi"):
        (videos / name).unlink()
    proc = run_cli("sldata", "extract-pose", videos, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["skipped"] == 1
    assert (out / "failures.jsonl").read_bytes() == b""


def test_resume_after_sigkill_gives_identical_outputs(extracted: tuple[Path, object], tmp_path: Path) -> None:
    ref, _ = extracted
    videos = tmp_path / "videos"
    clip(videos / "v0.mkv", 10)
    n = 12  # enough that a run on a starved machine is still running when its first pkl appears
    for i in range(1, n):
        shutil.copy(videos / "v0.mkv", videos / f"v{i}.mkv")
    out = tmp_path / "poses"
    proc = subprocess.Popen([str(BIN / "sldata"), "extract-pose", str(videos), "-o", str(out), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not list(out.glob("*.pkl")):
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.pkl")}
    assert 1 <= len(finished) < n
    rerun = run_cli("sldata", "extract-pose", videos, "-o", out, "--workers", "1", "--json")
    assert rerun.returncode == 0, rerun.stderr
    rep = json.loads(rerun.stdout)
    assert rep["skipped"] == len(finished) and rep["extracted"] == n - len(finished)
    for name, stat in finished.items():  # finished videos were not redone
        assert (os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) == stat
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl"] + sorted(f"v{i}.pkl" for i in range(n))
    want = load_pkl(ref / "short.pkl")  # the same 10 frames as the fixture's short.mkv
    for i in range(n):
        got = load_pkl(out / f"v{i}.pkl")
        assert np.array_equal(got.keypoints, want.keypoints) and np.array_equal(got.confidences, want.confidences)


def test_shards_cover_every_video_exactly_once(tmp_path: Path) -> None:
    names = [f"d{i % 3}/v{i:02d}.mp4" for i in range(11)]
    paths = sorted(Path(n) for n in names)
    parts = [shard_videos(paths, 3, i) for i in range(3)]
    assert sorted(p for part in parts for p in part) == paths
    assert sum(len(p) for p in parts) == 11 and all(parts)
    assert parts == [shard_videos(paths, 3, i) for i in range(3)]  # deterministic
    assert parts == [[p for p in paths if shard_of(p.as_posix(), 3) == i] for i in range(3)]  # by path alone
    # Through the real run: empty files fail fast, each shard records its own share.
    videos = tmp_path / "videos"
    for n in names:
        (videos / n).parent.mkdir(parents=True, exist_ok=True)
        (videos / n).write_bytes(b"")
    seen: list[str] = []
    for i in range(3):
        rep = run_extraction(videos, tmp_path / "out", num_shards=3, shard_index=i, workers=1)
        assert rep.total == len(parts[i]) and rep.shard == (i, 3)
        lines = (tmp_path / "out" / f"failures.shard-{i}-of-3.jsonl").read_text().splitlines()
        seen += [json.loads(line)["video"] for line in lines]
    assert sorted(seen) == sorted(names)
    with pytest.raises(UserError, match="shard-index"):
        shard_videos(paths, 3, 3)
    with pytest.raises(UserError, match="num-shards"):
        shard_videos(paths, 0, 0)


def test_unusable_input_and_bad_options_exit_2(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    for rel in ("a/x.mp4", "b/x.mp4", "x.avi", "y.mp4"):
        (videos / rel).parent.mkdir(parents=True, exist_ok=True)
        (videos / rel).write_bytes(b"")
    out = tmp_path / "out"
    (tmp_path / "none").mkdir()
    cases = [
        ((videos, "-o", out), "x: a/x.mp4, b/x.mp4, x.avi"),
        ((videos / "y.mp4", "-o", out, "--num-shards", "2", "--shard-index", "2"), "--shard-index must be in [0, 1]"),
        ((videos / "y.mp4", "-o", out, "--keypoints", "coco17"), "unknown keypoint set 'coco17'"),
        ((videos / "y.mp4", "-o", out, "--workers", "0"), "--workers must be at least 1"),
        ((tmp_path / "missing", "-o", out), "no such file or directory"),
        ((tmp_path / "none", "-o", out), "no videos"),
        ((videos / "y.mp4", "-o", out, "--executor", "dask"), "unknown executor 'dask'"),
        ((videos / "y.mp4", "-o", out, "--h5", videos / "y.mp4"), "is one of the input videos"),
    ]
    import importlib.util
    if importlib.util.find_spec("ray") is None:
        cases.append(((videos / "y.mp4", "-o", out, "--executor", "ray"), "pip install 'sldata[ray]'"))
    for args, needle in cases:
        proc = run_cli("sldata", "extract-pose", *args)
        assert_no_traceback(proc)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in " ".join(proc.stderr.split()), proc.stderr
    assert not out.exists()  # refused before any work
