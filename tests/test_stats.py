"""`sldata stats`: numbers checked against datasets built here with known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sldata.errors import UserError
from sldata.features import RepWriter, shard_path, to_v2_annotation, v1_path, write_annotation
from sldata.io import TMP_MARK
from sldata.pose import PoseH5Writer, PoseSample
from sldata.stats import Dist, stats

from .conftest import assert_no_traceback, invoke_cli

# video -> clip -> frames, for rep "dino" (D=4, float16); rep "s2v" has half the frames (D=6, float32)
FRAMES = {"vidA": {"0": 3, "1": 5, "2": 10, "10": 4}, "vidB": {"0": 7}}
WORDS = {("vidA", "0"): "one", ("vidA", "1"): "two words", ("vidA", "2"): "a b c d e",
         ("vidA", "10"): "x y", ("vidB", "0"): "hello there world"}


def _annotation() -> dict:
    ann: dict = {}
    for v, clips in FRAMES.items():
        ann[v] = {c: {"translation": WORDS[(v, c)], "paraphrases": [], "start": float(i),
                      "end": float(i) + 0.5 * (i + 1)} for i, c in enumerate(clips)}
    return ann


def _arrays(rep: str, video: str) -> dict[str, np.ndarray]:
    out = {}
    for c, t in FRAMES[video].items():
        if rep == "dino":
            out[c] = np.full((t, 4), 2.0, np.float16)
        else:
            out[c] = np.full((max(1, t // 2), 6), -1.0, np.float32)
    return out


def make_features(root: Path, layout: str) -> Path:
    ann = _annotation()
    write_annotation(root, "train", ann if layout == "v1" else to_v2_annotation(ann))
    for rep in ("dino", "s2v"):
        w = RepWriter(root, rep, "train", layout=layout, shard_size=1 if layout == "v2" else None)
        for v in FRAMES:
            w.add_video(v, _arrays(rep, v))
        w.close()
    return root


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_feature_counts_and_distributions(tmp_path: Path, layout: str) -> None:
    root = make_features(tmp_path / "ds", layout)
    r = stats(root)
    assert r.kind == layout and not r.deep
    s = r.to_dict()["splits"]["train"]
    assert (s["videos"], s["clips"]) == (2, 5)
    assert s["clips_per_video"] == Dist.of([4, 1]).to_dict()
    assert s["translation_words"]["min"] == 1 and s["translation_words"]["max"] == 5
    assert s["translation_words"]["total"] == 1 + 2 + 5 + 2 + 3
    assert s["clip_seconds"]["min"] == 0.5 and s["clip_seconds"]["max"] == 2.0
    dino, s2v = s["reps"]["dino"], s["reps"]["s2v"]
    assert dino["frames"] == 3 + 5 + 10 + 4 + 7 and dino["clips"] == 5
    assert dino["frames_per_clip"] == {"n": 5, "min": 3, "median": 5, "p95": pytest.approx(9.4),
                                       "max": 10, "mean": pytest.approx(29 / 5), "total": 29}
    assert s2v["frames"] == 1 + 2 + 5 + 2 + 3
    assert dino["dims"] == {"4": 5} and dino["dtypes"] == {"float16": 5}
    assert s2v["dims"] == {"6": 5} and s2v["dtypes"] == {"float32": 5}
    assert dino["missing_videos"] == dino["missing_clips"] == 0
    assert "values" not in dino  # shallow: no array data read
    if layout == "v1":
        p = v1_path(root, "dino", "train")
        assert dino["files"] == [{"file": p.name, "shard": None, "videos": 2, "bytes": p.stat().st_size}]
    else:
        assert [(f["shard"], f["videos"]) for f in dino["files"]] == [(0, 1), (1, 1)]
        assert [f["bytes"] for f in dino["files"]] == [shard_path(root, "dino", "train", k).stat().st_size
                                                       for k in (0, 1)]


def test_deep_value_statistics_and_missing(tmp_path: Path) -> None:
    root = make_features(tmp_path / "ds", "v1")
    ann = _annotation()
    ann["vidC"] = {"0": {"translation": "late", "paraphrases": []}}  # in no rep file
    write_annotation(root, "train", ann)
    r = stats(root, deep=True).to_dict()["splits"]["train"]
    assert r["videos"] == 3 and r["reps"]["dino"]["missing_videos"] == 1
    v = r["reps"]["dino"]["values"]
    assert (v["mean"], v["std"], v["min"], v["max"], v["non_finite"]) == (2, 0, 2, 2, 0)
    assert r["reps"]["s2v"]["values"]["mean"] == -1


def test_deep_counts_non_finite(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_annotation(root, "dev", {"v": {"0": {"translation": "t", "paraphrases": []}}})
    w = RepWriter(root, "dino", "dev", layout="v1")
    a = np.zeros((4, 3), np.float32)
    a[1, 2] = np.nan
    a[3, 0] = np.inf
    w.add_video("v", {"0": a})
    w.close()
    v = stats(root, deep=True).to_dict()["splits"]["dev"]["reps"]["dino"]["values"]
    assert v["non_finite"] == 2
    assert v["all_zero_frames"] == 2  # rows 0 and 2


def make_pose(path: Path) -> Path:
    """Video a: 10 frames @25 fps, left hand missing in frames 0-3, right hand never seen.
    Video b: 6 frames @30 fps, everything present."""
    rng = np.random.default_rng(0)
    with PoseH5Writer(path, keypoint_set="openhands75") as w:
        kp = rng.uniform(0.1, 0.9, (10, 75, 3)).astype(np.float32)
        conf = np.ones((10, 75), np.float32)
        kp[:4, 33:54] = 0
        conf[:4, 33:54] = 0
        kp[:, 54:75] = 0
        conf[:, 54:75] = 0
        conf[5, 40] = 0  # one missing landmark does not make the hand missing
        w.add("a", PoseSample(kp, conf, fps=25.0, width=640, height=480))
        kp = rng.uniform(0.1, 0.9, (6, 75, 3)).astype(np.float32)
        w.add("b", PoseSample(kp, np.ones((6, 75), np.float32), fps=30.0, width=1280, height=720))
    return path


def test_pose_shallow_and_deep(tmp_path: Path) -> None:
    path = make_pose(tmp_path / "p.h5")
    shallow = stats(path).to_dict()
    assert shallow["kind"] == "pose-h5" and shallow["keypoint_set"] == "openhands75"
    assert (shallow["videos"], shallow["frames"]) == (2, 16)
    assert shallow["fps"]["min"] == 25 and shallow["fps"]["max"] == 30
    assert shallow["seconds_per_video"]["total"] == pytest.approx(10 / 25 + 6 / 30)
    assert shallow["frame_sizes"] == {"640x480": 1, "1280x720": 1}
    assert "detection" not in shallow
    d = stats(path, deep=True).to_dict()["detection"]
    assert d["pose"] == {"frames": 16, "rate": 1, "per_video": Dist.of([1, 1]).to_dict()}
    assert d["left_hand"]["frames"] == 6 + 6 and d["left_hand"]["rate"] == pytest.approx(12 / 16)
    assert d["right_hand"]["frames"] == 6 and d["right_hand"]["per_video"]["min"] == 0
    assert d["any_hand"]["frames"] == 12
    assert "face" not in d


def test_cli_json_and_plots(tmp_path: Path) -> None:
    path = make_pose(tmp_path / "p.h5")
    proc = invoke_cli("sldata", "stats", path, "--deep", "--json", "--plots", tmp_path / "plots")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["detection"]["right_hand"]["rate"] == pytest.approx(6 / 16)
    names = sorted(Path(p).name for p in out["plots"])
    assert names == ["detection.png", "frames_per_video.png", "seconds_per_video.png"]
    for n in names:
        with Image.open(tmp_path / "plots" / n) as im:
            assert im.format == "PNG" and im.size[0] > 100
    assert not [p for p in (tmp_path / "plots").iterdir() if TMP_MARK in p.name]

    root = make_features(tmp_path / "ds", "v2")
    proc = invoke_cli("sldata", "stats", root, "--plots", tmp_path / "fplots")
    assert proc.returncode == 0, proc.stderr
    assert "dino" in proc.stdout and "s2v" in proc.stdout and "29" in proc.stdout
    assert (tmp_path / "fplots" / "frames_per_clip.png").is_file()


def test_split_option(tmp_path: Path) -> None:
    root = make_features(tmp_path / "ds", "v1")
    assert list(stats(root, split="train").to_dict()["splits"]) == ["train"]
    with pytest.raises(UserError):
        stats(root, split="nope")


@pytest.mark.parametrize("what", ["missing", "empty-dir", "not-h5", "h5-not-pose"])
def test_unusable_input_exits_2(tmp_path: Path, what: str) -> None:
    target = tmp_path / what
    if what == "empty-dir":
        target.mkdir()
    elif what == "not-h5":
        target.write_text("hello")
    elif what == "h5-not-pose":
        import h5py

        with h5py.File(target, "w") as f:
            f["x"] = np.zeros(3)
    proc = invoke_cli("sldata", "stats", target)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert "error" in proc.stderr


def test_pose_deep_reads_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant-memory block reads give the same numbers as whole-video reads."""
    import sldata.stats as st

    path = make_pose(tmp_path / "p.h5")
    whole = stats(path, deep=True).to_dict()
    monkeypatch.setattr(st, "POSE_BLOCK_FRAMES", 3)
    blocks = stats(path, deep=True).to_dict()
    assert blocks["detection"] == whole["detection"] and blocks["xy_range"] == whole["xy_range"]


def test_unreadable_shard_exits_1(tmp_path: Path) -> None:
    root = make_features(tmp_path / "ds", "v2")
    shard_path(root, "dino", "train", 1).write_bytes(b"not hdf5 at all")
    r = stats(root)
    assert r.problem_lines() == ["dino/dino.train.1.h5: " + r.problems[0].message]
    dino = r.to_dict()["splits"]["train"]["reps"]["dino"]
    assert dino["missing_videos"] == 1 and dino["frames"] == 3 + 5 + 10 + 4  # vidB lived in shard 1
    assert r.to_dict()["splits"]["train"]["reps"]["s2v"]["missing_videos"] == 0
    proc = invoke_cli("sldata", "stats", root)
    assert proc.returncode == 1 and "unreadable" in proc.stdout
    assert_no_traceback(proc)


def test_pose_video_without_visibility_is_a_problem(tmp_path: Path) -> None:
    import h5py

    path = make_pose(tmp_path / "p.h5")
    with h5py.File(path, "a") as f:
        del f["visibility/b"]
    r = stats(path, deep=True)
    assert len(r.problems) == 1 and r.problem_lines()[0].startswith("b: ")
    assert r.to_dict()["detection"]["left_hand"]["frames"] == 6  # video a still counted
    proc = invoke_cli("sldata", "stats", path, "--deep", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["problems"] == r.problem_lines()
