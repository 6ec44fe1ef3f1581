"""The one pkl rule (sldata.pkls): which files are pkls and what their keys are, the same for
pkl2h5, validate (layout and pkl check), `validate --videos` and render."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sldata.io import tmp_name
from sldata.pkls import find_pkls, has_pkls, pkl_key
from sldata.pose import PoseH5, PoseSample, save_pkl


def _sample(frames: int = 4) -> PoseSample:
    rng = np.random.default_rng(frames)
    return PoseSample(rng.random((frames, 75, 3), dtype=np.float32), rng.random((frames, 75), dtype=np.float32))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Nested pkls, a non-UTF-8 name, and everything the rule leaves out."""
    d = tmp_path / "poses"
    save_pkl(d / "z.pkl", _sample(3))
    save_pkl(d / "a" / "x.pkl", _sample(4))
    save_pkl(d / "a" / "b" / "y.pkl", _sample(5))
    save_pkl(Path(os.fsdecode(os.fsencode(str(d)) + b"/caf\xe9.pkl")), _sample(6))  # Latin-1, not UTF-8
    (d / "upper.PKL").write_bytes((d / "z.pkl").read_bytes())          # not lower-case .pkl: not a pkl
    tmp_name(d / "w.pkl").write_bytes(b"half")                          # a killed run's temporary
    tmp_name(d / "a" / "x.pkl", ".pkl").write_bytes(b"half")            # ... even one ending in .pkl
    (d / "folder.pkl").mkdir()                                          # a folder is never a pkl
    (d / "a" / "loop").symlink_to(d, target_is_directory=True)          # a link loop is walked once
    (d / "notes.txt").write_text("x")
    return d


EXPECTED = ["a/b/y.pkl", "a/x.pkl", "caf\\xe9.pkl", "z.pkl"]


def test_the_rule(folder: Path) -> None:
    scan = find_pkls(folder)
    assert [scan.rel(p) for p in scan.files] == EXPECTED and scan.unreadable == []
    assert [pkl_key(p) for p in scan.files] == ["y", "x", "caf\\xe9", "z"]  # the stem, valid UTF-8
    assert has_pkls(folder) and not has_pkls(folder / "folder.pkl")
    assert find_pkls(folder / "z.pkl").files == [folder / "z.pkl"]  # one pkl is a folder of one


def test_a_root_that_cannot_be_listed_is_the_commands_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        find_pkls(tmp_path / "absent")


def test_every_command_sees_the_same_videos(folder: Path, tmp_path: Path) -> None:
    from sldata.pack import pkl2h5
    from sldata.render import load_pose
    from sldata.validate import detect, validate
    from sldata.validate.videos import check_videos

    rep = pkl2h5(folder, tmp_path / "p.h5", workers=1)
    assert rep.ok and rep.packed == 4
    with PoseH5(tmp_path / "p.h5") as h5:
        packed = sorted(h5.keys())
    assert packed == ["caf\\xe9", "x", "y", "z"]

    v = validate(folder)
    assert v.ok and v.stats["videos"] == 4 and v.stats["frames"] == 3 + 4 + 5 + 6
    assert detect(folder / "a" / "..")[0] == "pkl-dir"
    only_nested = tmp_path / "nested"
    save_pkl(only_nested / "deep" / "q.pkl", _sample())
    assert detect(only_nested)[0] == "pkl-dir"

    for key in packed:
        src = load_pose(folder, key)
        assert src.key == key and src.num_frames > 0
        src.close()

    videos = tmp_path / "videos"
    (videos / "s").mkdir(parents=True)
    for name in ("x.mp4", "s/y.mov", "z.mp4", "gone.mp4", "w.mp4", "upper.mp4"):
        (videos / name).write_bytes(b"")
    missing = sorted(f.video for f in check_videos(folder, videos))
    assert missing == ["gone.mp4", "upper.mp4", "w.mp4"]  # a temporary or a .PKL is no pose
