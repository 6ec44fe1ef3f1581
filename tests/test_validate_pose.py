"""validate on pose h5 files and pkl directories: real broken files, exact findings."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from sldata.findings import Finding, Report
from sldata.pose import PoseH5Writer, PoseSample, save_pkl
from sldata.validate import validate


def sample(frames: int = 12, n: int = 75, seed: int = 0) -> PoseSample:
    rng = np.random.default_rng(seed)
    return PoseSample(rng.random((frames, n, 3), dtype=np.float32), rng.random((frames, n), dtype=np.float32),
                      fps=25.0, width=640, height=480)


def pose_h5(tmp_path: Path, keys: tuple[str, ...] = ("a", "b", "c", "d")) -> Path:
    path = tmp_path / "poses.h5"
    with PoseH5Writer(path) as w:
        for i, k in enumerate(keys):
            w.add(k, sample(10 + i, seed=i), source=f"{k}.mp4")
    return path


def only(report: Report, code: str) -> list[Finding]:
    return [f for f in report.findings if f.code == code]


def one(report: Report, code: str) -> Finding:
    fs = only(report, code)
    assert len(fs) == 1, (code, report.findings)
    return fs[0]


@pytest.mark.parametrize("deep", [False, True])
def test_clean_pose_h5_is_valid(tmp_path: Path, deep: bool) -> None:
    r = validate(pose_h5(tmp_path), deep=deep)
    assert r.layout == "pose-h5" and r.findings == []
    assert r.stats["videos"] == 4 and r.stats["frames"] == 10 + 11 + 12 + 13
    assert r.stats["keypoints"] == 75 and r.stats["keypoint_set"] == "openhands75"


def test_openhands_file_without_attributes_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "oh.h5"
    with h5py.File(path, "w") as f:  # as OpenHands' pkl_to_h5.py writes it
        for k in ("x", "y"):
            f.create_dataset(f"keypoints/{k}", data=np.full((6, 75, 3), 0.5, np.float32))
            f.create_dataset(f"visibility/{k}", data=np.ones((6, 75, 1), np.float32))
    r = validate(path, deep=True)
    assert r.findings == [] and r.stats["keypoints"] == 75


def test_pose_shapes_dtypes_and_attrs(tmp_path: Path) -> None:
    path = pose_h5(tmp_path, keys=("a", "b", "c", "d", "e", "f", "g", "h"))
    with h5py.File(path, "a") as f:
        kp, vis = f["keypoints"], f["visibility"]
        del kp["a"]
        kp["a"] = np.zeros((10, 75, 2), np.float32)  # not (F, N, 3)
        del vis["b"]
        vis["b"] = np.zeros((12, 75), np.float32)  # frames differ (keypoints have 11)
        del vis["c"]  # no visibility
        del kp["d"], vis["d"]
        kp["d"] = np.zeros((13, 74, 3), np.float32)  # not openhands75
        vis["d"] = np.zeros((13, 74), np.float32)
        del kp["e"], vis["e"]
        kp["e"] = np.zeros((14, 75, 3), np.int16)
        vis["e"] = np.zeros((14, 75), np.float32)
        kp["f"].attrs["num_frames"] = 99
        kp["g"].attrs["fps"] = -3.0
        del kp["h"]  # visibility without keypoints
    r = validate(path)
    shape = {f.video: f.message for f in only(r, "pose-shape")}
    assert set(shape) == {"a", "b", "c", "d", "f", "h"}
    assert "(F, N, 3)" in shape["a"] and "12 frames, keypoints 11" in shape["b"]
    assert "no visibility" in shape["c"] and "74 keypoints, expected 75 (openhands75)" in shape["d"]
    assert "num_frames=99" in shape["f"] and "visibility without keypoints" in shape["h"]
    d = one(r, "bad-dtype")
    assert (d.video, d.severity, Path(d.file).name) == ("e", "error", "poses.h5") and "int16" in d.message
    s = one(r, "schema")
    assert s.video == "g" and s.message.startswith("attrs.fps:")
    assert all(f.severity == "error" for f in r.findings)


def test_bad_root_attributes_are_schema_errors(tmp_path: Path) -> None:
    path = pose_h5(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["keypoint_set"] = "openhands76"
    f = one(validate(path), "schema")
    assert f.video is None and f.message.startswith("attrs.keypoint_set:")


def test_non_finite_and_out_of_range_only_with_deep(tmp_path: Path) -> None:
    path = pose_h5(tmp_path)
    with h5py.File(path, "a") as f:
        a = f["keypoints/b"][()]
        a[3, 5, 0] = np.nan
        f["keypoints/b"][...] = a
        c = f["keypoints/c"][()]
        c[:4, :, :2] *= 640  # pixels instead of normalised coordinates in 4 frames
        f["keypoints/c"][...] = c
        a[:, 25:33, 1] = 2.6  # off-screen legs, as MediaPipe extrapolates them: not "far outside"
        f["keypoints/b"][...] = a
        v = f["visibility/d"][()]
        v[0, 0] = np.inf
        f["visibility/d"][...] = v
    assert validate(path).findings == []
    r = validate(path, deep=True)
    nf = {f.video: f for f in only(r, "non-finite")}
    assert set(nf) == {"b", "d"} and all(f.severity == "error" for f in nf.values())
    rng = one(r, "pose-range")
    assert (rng.video, rng.severity) == ("c", "warning") and rng.message.startswith("4 of 12 frames")


def test_unopenable_h5_is_unknown_layout(tmp_path: Path) -> None:
    path = pose_h5(tmp_path)
    path.write_bytes(path.read_bytes()[:3000])
    r = validate(path)
    f = one(r, "unknown-layout")
    assert r.layout == "unknown" and f.severity == "error" and "cannot be opened" in f.message


# --- pkl directories ---------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def pkl_dir(tmp_path: Path, n: int = 4) -> Path:
    d = tmp_path / "poses"
    for i in range(n):
        save_pkl(d / f"v{i}.pkl", sample(8 + i, seed=i))
    return d


@pytest.mark.parametrize("deep", [False, True])
def test_clean_pkl_dir_is_valid(tmp_path: Path, deep: bool) -> None:
    r = validate(pkl_dir(tmp_path), deep=deep)
    assert r.layout == "pkl-dir" and r.findings == [] and r.stats["videos"] == 4
    assert r.stats["frames"] == 8 + 9 + 10 + 11 and r.stats["keypoint_set"] == "openhands75"


def test_broken_pkls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d = pkl_dir(tmp_path)
    (d / "evil.pkl").write_bytes(pickle.dumps({"keypoints": _Evil(), "confidences": np.zeros((1, 75))}))
    (d / "cut.pkl").write_bytes((d / "v0.pkl").read_bytes()[:50])
    (d / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    s = sample(5)
    (d / "flat.pkl").write_bytes(pickle.dumps({"keypoints": s.keypoints[..., :2], "confidences": s.confidences}))
    (d / "conf.pkl").write_bytes(pickle.dumps({"keypoints": s.keypoints, "confidences": s.confidences[:4]}))
    (d / "ints.pkl").write_bytes(pickle.dumps({"keypoints": s.keypoints.astype(np.int64),
                                              "confidences": s.confidences}))
    save_pkl(d / "sub" / "face.pkl", sample(5, n=543))
    r = validate(d)
    assert not (tmp_path / "PWNED").exists()
    got = {(f.code, f.video) for f in r.findings}
    assert got == {("pkl-unsafe", "evil"), ("pkl-unreadable", "cut"), ("schema", "list"), ("pose-shape", "flat"),
                   ("pose-shape", "conf"), ("bad-dtype", "ints"), ("pose-shape", "face")}  # key = stem (sldata.pkls)
    assert all(f.severity == "error" for f in r.findings)
    evil = one(r, "pkl-unsafe")
    assert Path(evil.file).name == "evil.pkl" and "posix.system" in evil.message or "os.system" in evil.message
    face = next(f for f in r.findings if f.video == "face")
    assert "543 keypoints" in face.message and "have 75" in face.message


def test_pkl_non_finite_and_range_with_deep(tmp_path: Path) -> None:
    d = pkl_dir(tmp_path)
    s = sample(6, seed=9)
    s.keypoints[2, 0, 1] = np.inf
    s.keypoints[4, 3, 0] = -7.0
    save_pkl(d / "odd.pkl", s)
    assert validate(d).findings == []
    r = validate(d, deep=True)
    assert {(f.code, f.video, f.severity) for f in r.findings} == {("non-finite", "odd", "error"),
                                                                    ("pose-range", "odd", "warning")}
    assert one(r, "pose-range").message.startswith("1 of 6 frames")


def test_pool_over_name_slices_gives_the_same_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sldata import scan as scan_mod

    path = pose_h5(tmp_path, keys=tuple(f"k{i}" for i in range(9)))
    with h5py.File(path, "a") as f:
        a = f["keypoints/k7"][()]
        a[0, 0, 0] = np.nan
        f["keypoints/k7"][...] = a
        del f["visibility/k2"]
    d = pkl_dir(tmp_path, n=6)
    (d / "bad.pkl").write_bytes(b"not a pickle")
    seq = [validate(p, deep=True, workers=1) for p in (path, d)]
    monkeypatch.setattr(scan_mod, "POOL_MIN_BYTES", 0)
    monkeypatch.setattr("sldata.validate.pose.POOL_MIN_BYTES", 0)
    par = [validate(p, deep=True, workers=2) for p in (path, d)]
    for s, p in zip(seq, par):
        assert sorted((f.code, f.video) for f in p.findings) == sorted((f.code, f.video) for f in s.findings)
        assert p.stats == s.stats
    assert sorted((f.code, f.video) for f in par[0].findings) == [("non-finite", "k7"), ("pose-shape", "k2")]
    assert [(f.code, f.video) for f in par[1].findings] == [("pkl-unreadable", "bad")]


_CRASH_ON_ONE_PKL = """
import os, signal, sys
import sldata.validate.pose as vp
from sldata.findings import Report

real = vp.safe_unpickle
def crashing(p):
    if p.endswith("v13.pkl"):
        os.kill(os.getpid(), signal.SIGKILL)  # a native crash or an OOM kill while reading this pkl
    return real(p)
vp.safe_unpickle = crashing  # the pool forks here (a fresh process): the workers see it
vp.POOL_MIN_BYTES = 0  # the pool even for a small folder
rep = vp.validate_pkl_dir(sys.argv[1], workers=2)
print(sorted((f.code, f.video, f.message) for f in rep.findings))
print(rep.stats["videos"])
"""


def test_a_worker_killed_on_one_pkl_is_that_pkls_finding_only(tmp_path: Path) -> None:
    """validate's pkl pool: a batch whose worker dies is checked again one pkl per job, so only the
    pkl that kills its worker is reported (`pkl-unreadable`), and the run ends with a report."""
    import subprocess
    import sys

    d = tmp_path / "pkls"
    d.mkdir()
    for i in range(40):
        save_pkl(d / f"v{i:02d}.pkl", PoseSample(np.zeros((3, 75, 3), np.float32), np.ones((3, 75), np.float32)))
    proc = subprocess.run([sys.executable, "-c", _CRASH_ON_ONE_PKL, str(d)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    findings, videos = proc.stdout.splitlines()
    assert eval(findings) == [("pkl-unreadable", "v13", "reading it crashed the worker (worker process died on "
                               "each of 2 attempts (killed by SIGKILL): killed, out of memory, or a native crash)")]
    assert videos == "40"
