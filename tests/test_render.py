"""`sldata render`: drawn pixels lie where the keypoints are; frame counts; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from sldata.errors import UserError
from sldata.io import TMP_MARK
from sldata.pose import PoseH5Writer, PoseSample, save_pkl
from sldata.render import COLORS, connections, parse_frames, render
from sldata.pose import KEYPOINT_SETS

from .conftest import assert_no_traceback, invoke_cli

W, H = 200, 100
L_SHOULDER, R_SHOULDER = 11, 12  # an edge of MediaPipe's POSE_CONNECTIONS
R_WRIST = 54  # right hand landmark 0 in openhands75
L_HAND = 33


def known_sample(frames: int = 1, width: int | None = W, height: int | None = H) -> PoseSample:
    """Shoulders at (0.25, 0.5) and (0.75, 0.5), right wrist alone at (0.5, 0.2);
    the left hand has coordinates at (0.5, 0.9) but confidence 0 (missing).
    Frame i shifts everything right by i * 0.02 so GIF/MP4 frames differ."""
    kp = np.zeros((frames, 75, 3), np.float32)
    conf = np.zeros((frames, 75), np.float32)
    for i in range(frames):
        dx = 0.02 * i
        kp[i, L_SHOULDER, :2] = (0.25 + dx, 0.5)
        kp[i, R_SHOULDER, :2] = (0.75 + dx, 0.5)
        kp[i, R_WRIST, :2] = (0.5 + dx, 0.2)
        kp[i, L_HAND:L_HAND + 21, :2] = (0.5, 0.9)
        conf[i, [L_SHOULDER, R_SHOULDER, R_WRIST]] = 1.0
    return PoseSample(kp, conf, fps=10.0, width=width, height=height)


def write_h5(path: Path, frames: int = 1, **kw) -> Path:
    with PoseH5Writer(path) as w:
        w.add("clip", known_sample(frames, **kw))
        w.add("other", known_sample(2))
    return path


def near(img: np.ndarray, x: float, y: float, r: int = 1) -> np.ndarray:
    """Brightest pixel (max channel sum) in a small window around (x, y)."""
    xi, yi = int(round(x)), int(round(y))
    win = img[max(0, yi - r): yi + r + 1, max(0, xi - r): xi + r + 1].reshape(-1, 3).astype(int)
    return win[win.sum(axis=1).argmax()]


def test_png_pixels_where_keypoints_are(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "p.h5")
    out = tmp_path / "one.png"
    res = render(src, "clip", out, frames="0")
    assert (res.frames, res.width, res.height) == (1, W, H)  # canvas from the file's width/height
    img = cv2.imread(str(out))
    assert img.shape == (H, W, 3)
    body = np.array(COLORS["pose"])
    for x, y in ((0.25 * W, 0.5 * H), (0.75 * W, 0.5 * H), (0.5 * W, 0.5 * H)):  # joints and the edge
        assert np.abs(near(img, x, y) - body).max() <= 30
    rw = near(img, 0.5 * W, 0.2 * H)
    assert np.abs(rw - np.array(COLORS["right_hand"])).max() <= 40
    # the missing left hand is not drawn; neither is anything at the (0, 0) zeros of missing points
    assert img[int(0.9 * H) - 3: int(0.9 * H) + 4, W // 2 - 3: W // 2 + 4].max() == 0
    assert img[:5, :5].max() == 0 and img[-10:, :].max() == 0
    drawn = (img.sum(axis=2) > 0).sum()
    assert 100 < drawn < 0.1 * W * H  # a line and three dots, not a filled canvas


def test_size_option_and_default_canvas(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "p.h5", width=None, height=None)
    render(src, "clip", tmp_path / "d.png")
    assert cv2.imread(str(tmp_path / "d.png")).shape == (512, 512, 3)
    render(src, "clip", tmp_path / "s.png", size=(300, 150))
    img = cv2.imread(str(tmp_path / "s.png"))
    assert img.shape == (150, 300, 3)
    assert img[75, 75].sum() > 0 and img[75, 225].sum() > 0  # the shoulders scale with the canvas


def test_contact_sheet(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "p.h5", frames=9)
    res = render(src, "clip", tmp_path / "sheet.png", sheet=4)
    assert res.frame_indices == [0, 3, 5, 8]
    img = cv2.imread(str(tmp_path / "sheet.png"))
    assert img.shape == (2 * H + 2, 2 * W + 2, 3)  # 2 x 2 tiles, 2-pixel gaps


def test_gif_and_mp4_frame_counts(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "p.h5", frames=6)
    render(src, "clip", tmp_path / "all.gif")
    with Image.open(tmp_path / "all.gif") as im:
        assert im.n_frames == 6 and im.info["duration"] == 100  # 10 fps
    render(src, "clip", tmp_path / "part.gif", frames="1:4")
    with Image.open(tmp_path / "part.gif") as im:
        assert im.n_frames == 3
    res = render(src, "clip", tmp_path / "v.mp4", frames="2:")
    assert res.frame_indices == [2, 3, 4, 5]
    cap = cv2.VideoCapture(str(tmp_path / "v.mp4"))
    n, first = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        first = frame if first is None else first
        n += 1
    cap.release()
    assert n == 4 and first.shape == (H, W, 3)
    assert first[int(0.5 * H), int((0.25 + 0.04) * W)].sum() > 300  # frame 2's shoulder, lossy codec
    assert not [p for p in tmp_path.iterdir() if TMP_MARK in p.name]


def test_over_source_video(tmp_path: Path) -> None:
    video = tmp_path / "src.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for _ in range(4):
        vw.write(np.full((120, 160, 3), 100, np.uint8))
    vw.release()
    src = write_h5(tmp_path / "p.h5", frames=4)
    res = render(src, "clip", tmp_path / "over.png", video=video, frames="1")
    img = cv2.imread(str(tmp_path / "over.png"))
    assert (res.width, res.height) == (160, 120) and img.shape == (120, 160, 3)
    assert abs(int(img[110, 10].mean()) - 100) <= 6  # the video shows through
    assert near(img, (0.25 + 0.02) * 160, 60).sum() > 500  # the skeleton is on top


def test_pkl_inputs(tmp_path: Path) -> None:
    save_pkl(tmp_path / "vid1.pkl", known_sample(3))
    assert render(tmp_path / "vid1.pkl", None, tmp_path / "a.png").key == "vid1"
    assert render(tmp_path / "vid1.pkl", "vid1", tmp_path / "b.png").frames == 3
    assert render(tmp_path, "vid1", tmp_path / "c.png").key == "vid1"  # a directory of pkls
    with pytest.raises(UserError, match="vid1"):
        render(tmp_path / "vid1.pkl", "other", tmp_path / "d.png")


def test_face_edges_need_holistic543() -> None:
    assert set(connections(KEYPOINT_SETS["openhands75"])) == {"pose", "left_hand", "right_hand"}
    edges = connections(KEYPOINT_SETS["holistic543"])
    assert len(edges["face"]) == 124 and min(min(e) for e in edges["face"]) >= 33
    assert max(max(e) for e in edges["right_hand"]) == 542


def test_parse_frames() -> None:
    assert parse_frames(None, 5) == range(5)
    assert parse_frames("1:3", 5) == range(1, 3)
    assert parse_frames("3", 5) == range(3, 4)
    assert parse_frames("-2:", 5) == range(3, 5)
    assert parse_frames(":100", 5) == range(5)
    for bad in ("x", "7:9", "2:1"):
        with pytest.raises(UserError):
            parse_frames(bad, 5)


def test_cli_render_and_bad_input(tmp_path: Path) -> None:
    src = write_h5(tmp_path / "p.h5", frames=3)
    ok = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "x.gif")
    assert ok.returncode == 0, ok.stderr
    assert "3 frame(s)" in ok.stdout
    for args, needle in (
        (["nosuch", "-o", tmp_path / "y.png"], "available: clip, other"),
        (["clip", "-o", tmp_path / "y.jpg"], ".png, .gif or .mp4"),
        (["clip", "-o", tmp_path / "y.png", "--frames", "9:"], "no frames"),
        (["clip", "-o", tmp_path / "y.png", "--size", "big"], "--size"),
        (["clip", "-o", tmp_path / "y.png", "--video", tmp_path / "none.mp4"], "no such file"),
    ):
        proc = invoke_cli("sldata", "render", src, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr
        assert_no_traceback(proc)
    proc = invoke_cli("sldata", "render", tmp_path / "missing.h5", "clip", "-o", tmp_path / "z.png")
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert not (tmp_path / "y.png").exists()


def test_min_conf_hides_low_confidence_points(tmp_path: Path) -> None:
    s = known_sample()
    s.confidences[0, R_WRIST] = 0.3  # a low-confidence guess
    with PoseH5Writer(tmp_path / "p.h5") as w:
        w.add("clip", s)
    render(tmp_path / "p.h5", "clip", tmp_path / "all.png")
    render(tmp_path / "p.h5", "clip", tmp_path / "sure.png", min_conf=0.5)
    assert near(cv2.imread(str(tmp_path / "all.png")), 0.5 * W, 0.2 * H).sum() > 200
    sure = cv2.imread(str(tmp_path / "sure.png"))
    assert near(sure, 0.5 * W, 0.2 * H, r=3).sum() == 0 and near(sure, 0.25 * W, 0.5 * H).sum() > 500


def test_block_reads_match_whole_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pose h5 is read in frame blocks; block edges change nothing in the picture."""
    import sldata.render as rd

    src = write_h5(tmp_path / "p.h5", frames=9)
    render(src, "clip", tmp_path / "a.png", sheet=5)
    monkeypatch.setattr(rd, "BLOCK_FRAMES", 2)
    render(src, "clip", tmp_path / "b.png", sheet=5)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_broken_visibility_exits_2(tmp_path: Path) -> None:
    import h5py

    src = write_h5(tmp_path / "p.h5")
    with h5py.File(src, "a") as f:
        del f["visibility/clip"]
        f["visibility/clip"] = np.ones((7, 75), np.float32)
    proc = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "x.png")
    assert proc.returncode == 2 and "visibility" in proc.stderr
    assert_no_traceback(proc)
