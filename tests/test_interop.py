"""`.pose` interop through the real pose-format package: headers, round trips, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# pose-format is the optional extra `sldata[pose-format]`; the test suite needs it installed
# (`make install` installs it), so a missing package fails here instead of skipping silently.
from pose_format import Pose
from pose_format.numpy.pose_body import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
from pose_format.utils.holistic import BODY_POINTS, HAND_POINTS, holistic_components

from sldata.interop import export_pose, import_pose
from sldata.io import TMP_MARK
from sldata.pose import PoseH5, PoseH5Writer, PoseSample

from .conftest import assert_no_traceback, invoke_cli, run_cli


def sample(n: int, frames: int, seed: int, fps: float = 29.97, size: tuple | None = (1280, 720)) -> PoseSample:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-0.1, 1.1, (frames, n, 3)).astype(np.float32)
    kp[..., 2] = rng.normal(0, 0.3, (frames, n))
    conf = rng.uniform(0.05, 1, (frames, n)).astype(np.float32)
    hand = slice(n - 42, n - 21)  # the left hand is missing in the first two frames
    kp[:2, hand] = 0
    conf[:2, hand] = 0
    w, h = size if size else (None, None)
    return PoseSample(kp, conf, fps=fps, width=w, height=h)


def write_src(path: Path, kset: str = "openhands75", size: tuple | None = (1280, 720)) -> Path:
    n = 75 if kset == "openhands75" else 543
    with PoseH5Writer(path, keypoint_set=kset) as w:
        w.add("vid_a", sample(n, 5, 1, size=size))
        w.add("vid-b", sample(n, 3, 2, fps=25.0, size=size))
    return path


def test_header_is_pose_formats_holistic(tmp_path: Path) -> None:
    export_pose(write_src(tmp_path / "p.h5"), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["vid-b.pose", "vid_a.pose"]
    pose = Pose.read((tmp_path / "out" / "vid_a.pose").read_bytes())
    h = pose.header
    assert [c.name for c in h.components] == ["POSE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"]
    assert h.components[0].points == BODY_POINTS and h.components[1].points == HAND_POINTS
    ref = {c.name: c for c in holistic_components("XYZC")}
    assert h.components[0].limbs == ref["POSE_LANDMARKS"].limbs and h.components[0].format == "XYZC"
    assert (h.dimensions.width, h.dimensions.height) == (1280, 720)
    assert pose.body.data.shape == (5, 1, 75, 3)
    assert pose.body.fps == pytest.approx(29.97, rel=1e-6)
    src = sample(75, 5, 1)
    # pixel coordinates, as pose-format's own MediaPipe files hold them
    np.testing.assert_allclose(pose.body.data.data[:, 0, :, 0], src.keypoints[..., 0] * 1280, rtol=1e-6)
    np.testing.assert_array_equal(pose.body.data.data[:, 0, :, 2], src.keypoints[..., 2])
    # pose-format masks exactly our missing points
    assert pose.body.data.mask[:2, 0, 33:54].all() and not pose.body.data.mask[2:, 0, 33:54].any()


@pytest.mark.parametrize("kset", ["openhands75", "holistic543"])
def test_round_trip_within_float32(tmp_path: Path, kset: str) -> None:
    src = write_src(tmp_path / "p.h5", kset)
    export_pose(src, tmp_path / "out")
    res = import_pose(tmp_path / "out", tmp_path / "back.h5")
    assert res.keypoint_set == kset and res.count == 2 and not res.failed
    with PoseH5(src) as a, PoseH5(tmp_path / "back.h5") as b:
        assert sorted(a.keys()) == sorted(b.keys()) and b.attrs["keypoint_set"] == kset
        for k in a.keys():
            x, y = a.read(k), b.read(k)
            diff = np.abs(x.keypoints[..., :2] - y.keypoints[..., :2])
            assert (diff <= np.spacing(np.abs(x.keypoints[..., :2]))).all()  # at most 1 ulp
            np.testing.assert_array_equal(x.keypoints[..., 2], y.keypoints[..., 2])
            np.testing.assert_array_equal(x.confidences, y.confidences)
            assert (y.keypoints[:2, -42:-21] == 0).all()
            assert (x.fps, x.width, x.height) == (y.fps, y.width, y.height)  # 29.97 survives float32


def test_normalized_round_trip_is_bit_exact(tmp_path: Path) -> None:
    src = write_src(tmp_path / "p.h5")
    export_pose(src, tmp_path / "out", normalized=True)
    pose = Pose.read((tmp_path / "out" / "vid_a.pose").read_bytes())
    assert (pose.header.dimensions.width, pose.header.dimensions.height) == (1, 1)
    import_pose(tmp_path / "out", tmp_path / "back.h5")
    with PoseH5(src) as a, PoseH5(tmp_path / "back.h5") as b:
        for k in a.keys():
            x, y = a.read(k), b.read(k)
            np.testing.assert_array_equal(x.keypoints, y.keypoints)
            np.testing.assert_array_equal(x.confidences, y.confidences)
            assert y.width is None and y.height is None


def test_unknown_size_exports_normalised(tmp_path: Path) -> None:
    src = write_src(tmp_path / "p.h5", size=None)
    export_pose(src, tmp_path / "out")
    import_pose(tmp_path / "out", tmp_path / "back.h5")
    with PoseH5(src) as a, PoseH5(tmp_path / "back.h5") as b:
        np.testing.assert_array_equal(a.keypoints("vid_a"), b.keypoints("vid_a"))


def test_imports_pose_formats_own_holistic_layout(tmp_path: Path) -> None:
    """A file as pose-format's holistic estimator writes it: 5 components incl. world landmarks."""
    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=640, height=480, depth=0),
                        components=holistic_components("XYZC"))
    total = header.total_points()
    assert total == 33 + 468 + 21 + 21 + 33
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 400, (4, 1, total, 3)).astype(np.float32)
    conf = np.ones((4, 1, total), np.float32)
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "signer.pose", "wb") as fh:
        Pose(header, NumPyPoseBody(fps=24.0, data=data, confidence=conf)).write(fh)
    res = import_pose(tmp_path / "in", tmp_path / "o.h5")
    assert res.keypoint_set == "holistic543"
    with PoseH5(tmp_path / "o.h5") as h5:
        s = h5.read("signer")
        assert s.fps == 24.0 and (s.width, s.height) == (640, 480)
        np.testing.assert_allclose(s.keypoints[:, :543, 0], data[:, 0, :543, 0] / 640, rtol=1e-6)
        np.testing.assert_array_equal(s.keypoints[:, :, 2], data[:, 0, :543, 2])  # world landmarks dropped
    res = import_pose(tmp_path / "in", tmp_path / "o75.h5", keypoints="openhands75")
    with PoseH5(tmp_path / "o75.h5") as h5:
        s = h5.read("signer")
        np.testing.assert_allclose(s.keypoints[:, 33:75, 1], data[:, 0, 501:543, 1] / 480, rtol=1e-6)


def test_bad_inputs(tmp_path: Path) -> None:
    export_pose(write_src(tmp_path / "p.h5"), tmp_path / "out")
    (tmp_path / "out" / "broken.pose").write_bytes(b"\x00\x01garbage")
    other = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(10, 10, 0),
                       components=[holistic_components()[0].__class__(
                           name="BODY_135", points=[str(i) for i in range(5)], limbs=[], colors=[(1, 2, 3)],
                           point_format="XYC")])
    with open(tmp_path / "out" / "openpose.pose", "wb") as fh:
        Pose(other, NumPyPoseBody(fps=25, data=np.zeros((2, 1, 5, 2), np.float32),
                                  confidence=np.ones((2, 1, 5), np.float32))).write(fh)
    proc = invoke_cli("sldata", "import-pose", tmp_path / "out", "-o", tmp_path / "o.h5")
    assert proc.returncode == 1, proc.stderr  # the work ran; two inputs failed
    assert_no_traceback(proc)
    assert "broken.pose" in proc.stdout and "openpose.pose" in proc.stdout and "POSE_LANDMARKS" in proc.stdout
    with PoseH5(tmp_path / "o.h5") as h5:
        assert sorted(h5.keys()) == ["vid-b", "vid_a"]
    res = import_pose(tmp_path / "out", tmp_path / "o2.h5")  # the failures are Findings
    assert sorted((f.code, f.file) for f in res.failures) == [("pose-unreadable", "broken.pose"),
                                                              ("pose-unreadable", "openpose.pose")]
    assert set(res.to_dict()["failed"]) == {"broken.pose", "openpose.pose"}  # --json keeps {file: reason}

    (tmp_path / "empty").mkdir()
    for args in (["import-pose", tmp_path / "empty", "-o", tmp_path / "e.h5"],
                 ["import-pose", tmp_path / "nothing", "-o", tmp_path / "e.h5"],
                 ["export-pose", tmp_path / "nothing.h5", "-o", tmp_path / "x"],
                 ["export-pose", tmp_path / "p.h5", "--to", "openpose", "-o", tmp_path / "x"]):
        proc = invoke_cli("sldata", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert_no_traceback(proc)
    assert not (tmp_path / "e.h5").exists()


def test_cli_round_trip_and_rerun(tmp_path: Path) -> None:
    src = write_src(tmp_path / "p.h5")
    for _ in range(2):  # a rerun overwrites each file atomically
        proc = invoke_cli("sldata", "export-pose", src, "--to", "pose", "-o", tmp_path / "out")
        assert proc.returncode == 0, proc.stderr
    assert not [p for p in (tmp_path / "out").iterdir() if TMP_MARK in p.name]
    proc = invoke_cli("sldata", "import-pose", tmp_path / "out", "-o", tmp_path / "back.h5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"count": 2' in proc.stdout


def test_without_pose_format_exit_2(tmp_path: Path) -> None:
    """Where the extra is not installed, both commands say how to get it (exit 2, no traceback)."""
    block = tmp_path / "block" / "pose_format"
    block.mkdir(parents=True)
    (block / "__init__.py").write_text("raise ImportError('pose-format is not installed here')\n")
    src = write_src(tmp_path / "p.h5")
    for args in (["export-pose", src, "-o", tmp_path / "x"], ["import-pose", tmp_path, "-o", tmp_path / "y.h5"]):
        proc = run_cli("sldata", *args, env={"PYTHONPATH": str(tmp_path / "block")})
        assert proc.returncode == 2, proc.stderr
        assert "sldata[pose-format]" in proc.stderr
        assert_no_traceback(proc)
    assert not (tmp_path / "x").exists()


def test_pose_formats_visualizer_draws_our_export(tmp_path: Path) -> None:
    """pose-format's own tools read the export: its visualizer puts the shoulders where ours are."""
    from pose_format.pose_visualizer import PoseVisualizer

    kp = np.zeros((2, 75, 3), np.float32)
    conf = np.zeros((2, 75), np.float32)
    kp[:, 11, :2] = (0.25, 0.5)  # left shoulder
    kp[:, 12, :2] = (0.75, 0.5)  # right shoulder
    conf[:, [11, 12]] = 1
    with PoseH5Writer(tmp_path / "p.h5") as w:
        w.add("s", PoseSample(kp, conf, fps=25.0, width=200, height=100))
    export_pose(tmp_path / "p.h5", tmp_path / "out")
    pose = Pose.read((tmp_path / "out" / "s.pose").read_bytes())
    frame = next(iter(PoseVisualizer(pose).draw()))
    assert frame.shape[:2] == (100, 200)
    background = frame[5, 5].astype(int)
    assert np.abs(frame[50, 100].astype(int) - background).max() > 50  # on the shoulder line
    assert np.abs(frame[90, 100].astype(int) - background).max() == 0


def test_import_never_writes_over_an_input_pose(tmp_path: Path) -> None:
    src = write_src(tmp_path / "p.h5")
    assert invoke_cli("sldata", "export-pose", src, "--to", "pose", "-o", tmp_path / "out").returncode == 0
    target = tmp_path / "out" / "vid_a.pose"
    before = target.read_bytes()
    for args in ((tmp_path / "out", "-o", target), (target, "-o", target)):
        proc = invoke_cli("sldata", "import-pose", *args)
        assert_no_traceback(proc)
        assert proc.returncode == 2 and "this output is the input" in proc.stderr, proc.stderr
    assert target.read_bytes() == before


@pytest.mark.parametrize("shape, needle", [((4, 75, 2), "must be (F, N, 3)"), ((4, 50, 3), "50 keypoints")])
def test_export_malformed_video_is_exit_2(tmp_path: Path, shape: tuple, needle: str) -> None:
    import h5py

    src = write_src(tmp_path / "p.h5")
    with h5py.File(src, "a") as h:  # a video damaged by another tool; key ':a:' must stay text, not an emoji
        h.create_dataset("keypoints/:a:", data=np.zeros(shape, np.float32))
        h.create_dataset("visibility/:a:", data=np.zeros(shape[:2], np.float32))
    proc = invoke_cli("sldata", "export-pose", src, "--to", "pose", "-o", tmp_path / "out")
    assert_no_traceback(proc)
    assert proc.returncode == 2 and needle in proc.stderr and ":a:" in proc.stderr, proc.stderr
