"""pkl2h5: per-video pkls -> one pose h5 (bit-exact, provenance, bad pkls skipped, atomic)."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from sldata.errors import UserError
from sldata.pack import pkl2h5
from sldata.pose import PoseH5, PoseSample, save_pkl
from tests.conftest import assert_no_traceback, invoke_cli, run_cli, tmpfs

OPTIONS = {"keypoints": "openhands75", "model_complexity": 1, "pkl_schema": 1}


def _sample(frames: int, n: int = 75, seed: int = 0, source: str | None = None,
            options: dict | None = None) -> PoseSample:
    rng = np.random.default_rng(seed)
    meta = {"options_hash": "abc", "options": options or OPTIONS, "mediapipe_version": "0.10.21",
            "sldata_version": "0.1.0"}
    if source:
        meta["source"] = source
    return PoseSample(rng.random((frames, n, 3), dtype=np.float32), rng.random((frames, n), dtype=np.float32),
                      fps=29.97002997, width=640, height=480, extra={"meta": meta})


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def pkls(tmp_path: Path) -> Path:
    d = tmp_path / "pkls"
    save_pkl(d / "vid_b.pkl", _sample(300, seed=1, source="signer1/vid_b.mp4"))
    save_pkl(d / "vid_a.pkl", _sample(5, seed=2, source="vid_a.mov"))
    save_pkl(d / "nested" / "vid_c.pkl", _sample(129, seed=3))  # no recorded source
    return d


def test_pack_is_bit_exact_with_provenance_and_validates(pkls: Path, tmp_path: Path) -> None:
    from sldata.validate import validate

    before = _digest(pkls)
    out = tmp_path / "pose.h5"
    proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "packed 3 videos" in proc.stdout
    assert _digest(pkls) == before  # inputs untouched
    with PoseH5(out) as p:
        assert p.keys() == ["vid_a", "vid_b", "vid_c"]
        assert p.attrs["format"] == "openhands-pose" and p.attrs["keypoint_set"] == "openhands75"
        assert p.attrs["mediapipe_version"] == "0.10.21"
        assert json.loads(p.attrs["extraction_options"]) == OPTIONS
        for key, seed, frames in (("vid_b", 1, 300), ("vid_a", 2, 5), ("vid_c", 3, 129)):
            ref = _sample(frames, seed=seed)
            assert np.array_equal(p.keypoints(key), ref.keypoints)
            assert np.array_equal(p.visibility(key), ref.confidences)
            a = p.video_attrs(key)
            assert a["fps"] == 29.97002997 and a["width"] == 640 and a["height"] == 480
            assert a["num_frames"] == frames
        assert p.video_attrs("vid_b")["source"] == "signer1/vid_b.mp4"
        assert p.video_attrs("vid_c")["source"] == "nested/vid_c.pkl"
    with h5py.File(out) as f:
        assert f["keypoints/vid_b"].dtype == np.float32
        assert f["keypoints/vid_b"].chunks == (64, 75, 3) and f["keypoints/vid_b"].compression == "lzf"
        assert f["visibility/vid_b"].chunks == (64, 75)
        assert f["keypoints/vid_a"].chunks == (5, 75, 3)
    report = validate(out)
    assert report.ok and not report.errors, [f.message for f in report.errors]
    proc = invoke_cli("sldata", "validate", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_float16_and_json_report(pkls: Path, tmp_path: Path) -> None:
    out = tmp_path / "half.h5"
    proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", out, "--dtype", "float16", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["ok"] is True and rep["packed"] == 3 and rep["frames"] == 434 and rep["dtype"] == "float16"
    with h5py.File(out) as f:
        kp = f["keypoints/vid_b"][()]
        assert kp.dtype == np.float16
        assert np.array_equal(kp, _sample(300, seed=1).keypoints.astype(np.float16))


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_bad_pkls_are_reported_and_skipped(pkls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (pkls / "evil.pkl").write_bytes(pickle.dumps({"keypoints": _Evil(), "confidences": np.zeros((1, 75))}))
    (pkls / "truncated.pkl").write_bytes(pickle.dumps({"keypoints": np.zeros((3, 75, 3), np.float32)})[:30])
    (pkls / "flat.pkl").write_bytes(pickle.dumps({"keypoints": np.zeros((3, 225), np.float32),
                                                  "confidences": np.zeros((3, 75), np.float32)}))
    save_pkl(pkls / "face.pkl", _sample(4, n=543))          # holistic543 among openhands75
    save_pkl(pkls / "odd.pkl", _sample(4, n=50))             # no such keypoint set
    save_pkl(pkls / "empty.pkl", _sample(0))                 # no frames
    (pkls / "ints.pkl").write_bytes(pickle.dumps({"keypoints": np.zeros((3, 75, 3), np.int64),
                                                  "confidences": np.zeros((3, 75), np.int64)}))
    out = tmp_path / "pose.h5"
    proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", out, "--json", cwd=tmp_path)
    assert_no_traceback(proc)
    assert proc.returncode == 1
    rep = json.loads(proc.stdout)
    bad = {b["pkl"]: b["reason"] for b in rep["bad"]}
    assert set(bad) == {"evil.pkl", "truncated.pkl", "flat.pkl", "face.pkl", "odd.pkl", "empty.pkl", "ints.pkl"}
    assert "refused to load posix.system" in bad["evil.pkl"]
    assert "not a readable pickle" in bad["truncated.pkl"]
    assert "(F, N, 3)" in bad["flat.pkl"]
    assert "mixed keypoint sets" in bad["face.pkl"]
    assert "match no keypoint set" in bad["odd.pkl"]
    assert bad["empty.pkl"] == "keypoints have no frames (F == 0)"  # pose.pkl_problems, as validate says
    assert "float" in bad["ints.pkl"]
    assert not (tmp_path / "PWNED").exists()
    with PoseH5(out) as p:  # the good ones are all there
        assert p.keys() == ["vid_a", "vid_b", "vid_c"]


def test_openhands_pkls_without_extras(tmp_path: Path) -> None:
    # OpenHands' mediapipe_extract.py writes only the two arrays (float64, confidences (F, N)).
    d = tmp_path / "oh"
    d.mkdir()
    rng = np.random.default_rng(5)
    kp, conf = rng.random((7, 75, 3)), rng.random((7, 75))
    (d / "clip1.pkl").write_bytes(pickle.dumps({"keypoints": kp, "confidences": conf}))
    report = pkl2h5(d, tmp_path / "oh.h5")
    assert report.ok and report.packed == 1 and report.warnings == []
    with PoseH5(tmp_path / "oh.h5") as p:
        assert np.array_equal(p.keypoints("clip1"), kp.astype(np.float32))
        assert p.video_attrs("clip1") == {"num_frames": 7, "source": "clip1.pkl"}
        assert "mediapipe_version" not in p.attrs and "extraction_options" not in p.attrs


def test_mixed_extraction_options_warn_and_are_not_recorded(tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    save_pkl(d / "a.pkl", _sample(3))
    save_pkl(d / "b.pkl", _sample(3, options={**OPTIONS, "min_detection_confidence": 0.8}))
    report = pkl2h5(d, tmp_path / "m.h5")
    assert report.ok and report.packed == 2
    assert report.warnings == ["pkls were extracted with different options; extraction_options not recorded"]
    with PoseH5(tmp_path / "m.h5") as p:
        assert "extraction_options" not in p.attrs


def test_existing_output_is_replaced_only_when_complete(pkls: Path, tmp_path: Path) -> None:
    out = tmp_path / "pose.h5"
    openhands = tmp_path / "openhands.h5"
    with h5py.File(openhands, "w") as f:  # OpenHands' own layout (no attributes): not ours to replace
        f.create_group("keypoints")
    with pytest.raises(UserError, match="not a pose h5 written by sldata"):
        pkl2h5(pkls, openhands)
    openhands.unlink()
    first = tmp_path / "first"
    save_pkl(first / "vid_z.pkl", _sample(3))
    pkl2h5(first, out)  # an earlier output of pkl2h5
    shutil.rmtree(first)
    old = out.read_bytes()
    (pkls / "evil.pkl").write_bytes(pickle.dumps({"keypoints": _Evil(), "confidences": 0}))
    bad_only = tmp_path / "bad_only"
    bad_only.mkdir()
    (bad_only / "evil.pkl").write_bytes((pkls / "evil.pkl").read_bytes())
    with pytest.raises(UserError, match="no usable pkl among 1"):
        pkl2h5(bad_only, out)
    assert out.read_bytes() == old  # nothing usable: the old file stays, no temporary is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_only", "pkls", "pose.h5"]
    report = pkl2h5(pkls, out)
    assert report.packed == 3 and not report.ok
    assert PoseH5(out).keys() == ["vid_a", "vid_b", "vid_c"]


def test_unusable_inputs_exit_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    dup = tmp_path / "dup"
    save_pkl(dup / "x.pkl", _sample(2))
    save_pkl(dup / "sub" / "x.pkl", _sample(2))
    for args, needle in (((empty, "-o", tmp_path / "a.h5"), "no .pkl files"),
                         ((tmp_path / "missing", "-o", tmp_path / "a.h5"), "not a directory"),
                         ((dup, "-o", tmp_path / "a.h5"), "x: sub/x.pkl, x.pkl"),
                         ((dup, "-o", tmp_path / "a.h5", "--dtype", "int8"), "float32 or float16"),
                         ((dup / "sub", "-o", empty), "is a directory; an output file never replaces a directory"),
                         ((dup / "sub", "-o", tmp_path), "this output directory holds the input")):
        proc = invoke_cli("sldata", "pkl2h5", *args)
        assert_no_traceback(proc)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in " ".join(proc.stderr.split()), proc.stderr
    assert not (tmp_path / "a.h5").exists()


def test_an_output_that_is_not_a_pose_h5_is_never_replaced(pkls: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.train.csv"
    labels.write_text("key,label\nvid_a,HELLO\n")
    for cmd in (("pkl2h5", pkls), ("merge-pose", tmp_path / "x.h5")):
        if cmd[0] == "merge-pose":
            assert pkl2h5(pkls, tmp_path / "x.h5").ok
        proc = invoke_cli("sldata", *cmd, "-o", labels)
        assert_no_traceback(proc)
        assert proc.returncode == 2, proc.stderr
        assert f"{labels} exists and is not a pose h5 written by sldata; refusing to replace it" in " ".join(proc.stderr.split())
    assert labels.read_text() == "key,label\nvid_a,HELLO\n"


def test_output_that_is_an_input_pkl_is_refused(pkls: Path) -> None:
    before = _digest(pkls)
    proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", pkls / "vid_a.pkl")
    assert_no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert "this output is the input" in " ".join(proc.stderr.split()), proc.stderr
    assert _digest(pkls) == before  # the input is never overwritten


def test_rerun_removes_a_killed_runs_temporary(pkls: Path, tmp_path: Path) -> None:
    from sldata.io import TMP_MARK

    out = tmp_path / "pose.h5"
    dead = tmp_path / f"pose.h5{TMP_MARK}999999999-deadbeef"  # a PID that is not running
    dead.write_bytes(b"half-written")
    assert pkl2h5(pkls, out).ok
    assert not dead.exists() and out.exists()


# --- scale: workers, resume after kill -9 ---------------------------------------------------

def _stored(path: Path) -> dict[str, tuple]:
    """Every dataset as stored: layout (shape, dtype, chunk shape, filter, each chunk's offset and
    filter mask), attributes, and the array's bytes. Equal dicts mean the same file, array for array.

    Not the compressed bytes: h5py's lzf leaves its compressor's hash table
    uninitialised (`INIT_HTAB 0` in lzf/lzfP.h), so the same chunk may compress to
    different, equally valid bytes in another process (seen here: a 26,401-byte
    chunk that differed and decoded to the same array).
    """
    out = {}
    with h5py.File(path) as f:
        for g in ("keypoints", "visibility"):
            for key, ds in f[g].items():
                chunks = [(info.chunk_offset, info.filter_mask)
                          for info in (ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks()))]
                out[f"{g}/{key}"] = (ds.shape, ds.dtype.str, ds.chunks, ds.compression, chunks, dict(ds.attrs),
                                     ds[()].tobytes())
    return out


def _many_pkls(folder: Path, count: int, frames: int = 40) -> Path:
    """Small pkls written plainly (no fsync each: test set-up, not the code under test)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        kp = rng.random((frames + i % 50, 75, 3), dtype=np.float32)
        kp[:, 33:] = 0  # no hands: compressible, as real pose is
        data = {"keypoints": kp, "confidences": (kp[..., 0] > 0).astype(np.float32), "fps": 25.0,
                "meta": {"mediapipe_version": "0.10.21", "options": OPTIONS}}
        (folder / f"clip{i:05d}.pkl").write_bytes(pickle.dumps(data, protocol=4))
    return folder


def test_workers_write_the_same_arrays_and_layout_as_the_writer(pkls: Path, tmp_path: Path) -> None:
    from sldata.pose import PoseH5Writer, load_pkl

    ref = tmp_path / "ref.h5"  # one process, PoseH5Writer.add (HDF5 compresses on write)
    with PoseH5Writer(ref) as w:
        for p in sorted(pkls.rglob("*.pkl")):
            s = load_pkl(p)
            w.add(p.stem, s, source=s.extra["meta"].get("source", p.relative_to(pkls).as_posix()))
    one, three = tmp_path / "w1.h5", tmp_path / "w3.h5"
    r1 = pkl2h5(pkls, one, workers=1)
    proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", three, "--workers", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert (rep["packed"], rep["resumed"], rep["failed"]) == (3, 0, 0) and r1.packed == 3
    assert _stored(one) == _stored(three) == _stored(ref)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkls", "ref.h5", "w1.h5", "w3.h5"]


def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    from tests.conftest import BIN

    src = _many_pkls(tmp_path / "many", 400)
    full = tmp_path / "full.h5"
    assert pkl2h5(src, full, workers=2).ok
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.sldata-parts"
    proc = subprocess.Popen([str(BIN / "sldata"), "pkl2h5", str(src), "-o", str(out), "-w", "1",
                             "--checkpoint", "0.02", "-q"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in parts.glob("part-*.h5") if ".sldata-tmp-" not in p.name] if parts.is_dir() else []
            if len(done) >= 2:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed; make the corpus larger"
        os.killpg(proc.pid, signal.SIGKILL)  # the writer and its workers, as a scheduler's kill would
    finally:
        proc.wait()
    assert not out.exists()  # nothing that looks complete
    proc = invoke_cli("sldata", "pkl2h5", src, "-o", out, "-w", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["packed"] == 400 and rep["failed"] == 0 and 0 < rep["resumed"] < 400, rep
    assert _stored(out) == _stored(full)
    with h5py.File(out) as f, h5py.File(full) as g:
        assert dict(f.attrs) == dict(g.attrs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.h5", "many", "out.h5"]  # parts and temporaries gone


def _crash_on_b(path: str) -> PoseSample:
    """A loader whose worker dies by signal on one pkl, as a native crash in a reader would."""
    import signal

    from sldata.pose import load_pkl

    if path.endswith("vid_b.pkl"):
        import faulthandler

        faulthandler.disable()  # pytest's handler would print the crash; the test is that the run goes on
        os.kill(os.getpid(), signal.SIGSEGV)
    return load_pkl(path)


def test_a_worker_crash_is_that_pkls_failure(pkls: Path, tmp_path: Path) -> None:
    from sldata.pack import pack_pkls
    from sldata.pkls import find_pkls

    save_pkl(pkls / "vid_d.pkl", _sample(20, seed=4))
    report = pack_pkls(find_pkls(pkls).files, tmp_path / "p.h5", root=pkls, workers=2, loader=_crash_on_b)
    assert report.packed == 3 and report.failed == 1
    assert [(f.code, f.file) for f in report.failures] == [("worker-lost", "vid_b.pkl")]
    assert report.failures[0].message.startswith("worker process died on each of 2 attempts (killed by SIGSEGV)")
    assert PoseH5(tmp_path / "p.h5").keys() == ["vid_a", "vid_c", "vid_d"]


def test_changed_pkls_are_packed_again_on_resume(tmp_path: Path) -> None:
    """Parts kept from a killed run hold a pkl's size and mtime; a pkl changed since is packed again."""
    from sldata.pack import PackReport, _encode_job, _entry, _items, _Parts
    from sldata.pose import load_pkl

    src = _many_pkls(tmp_path / "src", 6)
    out = tmp_path / "o.h5"
    parts_dir = tmp_path / "o.h5.sldata-parts"
    parts = _Parts(out, "float32", "lzf", 1e9)  # a killed run's state: 4 pkls in a complete part
    for it in _items(sorted(src.glob("*.pkl"))[:4], src, PackReport("x")):
        res = _encode_job((it.path, it.key, it.rel, "float32", "lzf", load_pkl))
        parts.add(it.key, res, _entry(res, it))
    parts.checkpoint()
    assert len(list(parts_dir.glob("part-*.h5"))) == 1
    changed = src / "clip00001.pkl"
    data = pickle.loads(changed.read_bytes())
    data["keypoints"] = data["keypoints"] + 1
    changed.write_bytes(pickle.dumps(data))
    rep = pkl2h5(src, out, workers=1)
    assert (rep.packed, rep.resumed, rep.failed) == (6, 3, 0)
    with PoseH5(out) as p:
        assert np.array_equal(p.keypoints("clip00001"), data["keypoints"])
    assert not parts_dir.exists()


# --- reliability: unreadable folders, full disk, odd names, outputs that are inputs ---------

def _without_dac(*cmd: object) -> list[str]:
    """Run as root without the capabilities that bypass file permissions (so chmod 000 bites);
    /root (where the interpreter lives) stays reachable, which `runuser -u nobody` would not give."""
    import shutil
    import subprocess

    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE (a non-root user already lacks it)")
    probe = subprocess.run([setpriv, "--bounding-set", "-dac_override,-dac_read_search", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode().strip()}")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *map(str, cmd)]


def test_an_unreadable_folder_is_a_recorded_failure(pkls: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import BIN

    locked = pkls / "locked"
    save_pkl(locked / "vid_x.pkl", _sample(3))
    out = tmp_path / "pose.h5"
    locked.chmod(0)
    try:
        cmd = _without_dac(BIN / "sldata", "pkl2h5", pkls, "-o", out)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        js = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=300)
    finally:
        locked.chmod(0o755)
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    assert "failed locked/: cannot list folder: Permission denied" in " ".join(proc.stderr.split())
    assert "packed 3 videos" in proc.stdout and "1 pkl(s) failed" in proc.stdout
    rep = json.loads(js.stdout)
    assert js.returncode == 1 and rep["failed"] == 1
    assert rep["bad"] == [{"pkl": "locked/", "reason": "cannot list folder: Permission denied"}]
    assert PoseH5(out).keys() == ["vid_a", "vid_b", "vid_c"]


@pytest.fixture
def full_disk(tmp_path: Path):
    """A real 2 MiB tmpfs: writes beyond it fail with ENOSPC."""
    with tmpfs(tmp_path / "small", "2m") as mnt:
        yield mnt


def test_a_full_disk_is_one_line_exit_2_not_a_segfault(full_disk: Path, tmp_path: Path) -> None:
    src = tmp_path / "big"
    rng = np.random.default_rng(3)
    for i in range(12):  # ~4 MB of incompressible pose: more than the 2 MiB disk
        save_pkl(src / f"v{i:02d}.pkl", PoseSample(rng.random((300, 75, 3), dtype=np.float32),
                                                   rng.random((300, 75), dtype=np.float32)))
    out = full_disk / "pose.h5"
    for workers in ("1", "2"):
        proc = run_cli("sldata", "pkl2h5", src, "-o", out, "-w", workers)
        assert_no_traceback(proc)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # was -11 (SIGSEGV)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {out}: cannot write: no space left on device"), lines
        assert not out.exists()
        left = [p.name for p in full_disk.rglob("*") if p.is_file()]
        assert all(n.startswith("part-") and ".sldata-tmp-" not in n for n in left), left  # only complete parts


def test_non_utf8_file_names_become_escaped_keys(tmp_path: Path) -> None:
    src = tmp_path / "odd"
    src.mkdir()
    name = os.fsdecode(b"caf\xe9.pkl")
    save_pkl(src / name, _sample(4, seed=9))
    save_pkl(src / "plain.pkl", _sample(3, seed=8))
    out = tmp_path / "odd.h5"
    proc = invoke_cli("sldata", "pkl2h5", src, "-o", out, "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["packed"] == 2
    assert rep["warnings"] == ["1 pkl name(s) are not valid UTF-8; their keys and sources are written with "
                               "\\xNN escapes (e.g. caf\\xe9.pkl)"]
    with PoseH5(out) as p:
        assert p.keys() == ["caf\\xe9", "plain"]
        assert p.video_attrs("caf\\xe9")["source"] == "caf\\xe9.pkl"
        assert np.array_equal(p.keypoints("caf\\xe9"), _sample(4, seed=9).keypoints)
    proc = invoke_cli("sldata", "pkl2h5", src, "-o", out)  # the summary prints too
    assert proc.returncode == 0 and "caf\\xe9.pkl" in proc.stderr, proc.stderr


def test_an_output_linked_to_an_input_is_refused(pkls: Path, tmp_path: Path) -> None:
    (tmp_path / "sym.h5").symlink_to(pkls / "vid_a.pkl")
    os.link(pkls / "vid_b.pkl", tmp_path / "hard.h5")
    before = _digest(pkls)
    for out in (tmp_path / "sym.h5", tmp_path / "hard.h5"):
        proc = invoke_cli("sldata", "pkl2h5", pkls, "-o", out)
        assert_no_traceback(proc)
        assert proc.returncode == 2, proc.stderr
        assert "this output is the input" in " ".join(proc.stderr.split()), proc.stderr
    assert _digest(pkls) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.h5", "pkls", "sym.h5"]


def test_a_second_run_on_the_same_output_is_refused(pkls: Path, tmp_path: Path) -> None:
    """Another process holds the output's lock (as a running pkl2h5 does): both commands refuse it."""
    from sldata.io import output_lock

    out = tmp_path / "out.h5"
    merged = tmp_path / "merged.h5"
    assert pkl2h5(pkls, tmp_path / "a.h5").ok
    out.write_bytes((tmp_path / "a.h5").read_bytes())  # the running pack's earlier output
    assert invoke_cli("sldata", "merge-pose", tmp_path / "a.h5", "-o", merged).returncode == 0
    before = out.read_bytes(), merged.read_bytes()
    with output_lock(out, "pose h5"), output_lock(merged, "pose h5"):
        runs = [(out, run_cli("sldata", "pkl2h5", pkls, "-o", out)),
                (merged, run_cli("sldata", "merge-pose", tmp_path / "a.h5", "-o", merged))]
    for target, proc in runs:
        assert_no_traceback(proc)
        assert proc.returncode == 2, proc.stderr
        msg = " ".join(proc.stderr.split())
        assert f"{target}: another run is writing this pose h5 (pid {os.getpid()} on" in msg, msg
    assert (out.read_bytes(), merged.read_bytes()) == before
    assert not (tmp_path / "out.h5.sldata-parts").exists()


def test_extract_pose_h5_on_a_full_disk_is_one_line_exit_2(full_disk: Path, tmp_path: Path) -> None:
    """extract-pose --h5 packs through the same writer: the pkls are kept, the h5 is refused cleanly."""
    import shutil

    from tests.conftest import ROOT

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "astronaut.mp4", videos / "astronaut.mp4")
    filler = full_disk / "filler"
    free = os.statvfs(full_disk).f_bavail * os.statvfs(full_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 16 * 1024))  # 16 KiB left: less than one video's pose
    out = full_disk / "poses.h5"
    proc = run_cli("sldata", "extract-pose", videos, "-o", tmp_path / "poses", "-w", "1", "--h5", out)
    assert_no_traceback(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])  # was -11 (SIGSEGV)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: cannot write: no space left on device"), lines
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # no h5, no temporary, no empty parts
    assert (tmp_path / "poses" / "astronaut.pkl").is_file()
