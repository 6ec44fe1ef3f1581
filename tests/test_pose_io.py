"""Pose readers and writer: pkl (restricted unpickling) and h5 (ours and OpenHands')."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from sldata.errors import UnsafePickleError, UserError
from sldata.pose import PoseH5, PoseH5Writer, PoseSample, load_pkl, save_pkl


def _sample(frames: int = 40, n: int = 75, seed: int = 0) -> PoseSample:
    rng = np.random.default_rng(seed)
    return PoseSample(rng.random((frames, n, 3), dtype=np.float32), rng.random((frames, n), dtype=np.float32),
                      fps=29.97, width=640, height=480)


def test_pkl_roundtrip_keeps_extras(tmp_path: Path) -> None:
    s = _sample()
    s.extra["meta"] = {"signer": 3}
    save_pkl(tmp_path / "a.pkl", s)
    back = load_pkl(tmp_path / "a.pkl")
    assert np.array_equal(back.keypoints, s.keypoints) and back.fps == 29.97 and back.extra["meta"] == {"signer": 3}


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_malicious_pkl_is_refused_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"keypoints": _Evil(), "confidences": np.zeros((1, 75))}))
    with pytest.raises(UnsafePickleError, match="refused to load"):
        load_pkl(path)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_pkl_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "t.pkl"
    path.write_bytes(pickle.dumps({"keypoints": np.zeros((3, 75, 3))})[:20])
    with pytest.raises(UserError):
        load_pkl(path)


def test_h5_writer_is_atomic_and_reader_reads_it(tmp_path: Path) -> None:
    out = tmp_path / "pose.h5"
    with PoseH5Writer(out, root_attrs={"mediapipe_version": "0.10.21"}) as w:
        w.add("vid_a", _sample(300), source="a/vid_a.mp4")
        w.add("vid_b", _sample(5, seed=1))
        assert not out.exists()  # still under its temporary name
    p = PoseH5(out)
    assert p.keys() == ["vid_a", "vid_b"]
    assert p.attrs["format"] == "openhands-pose" and p.keypoint_set.name == "openhands75"
    assert p.video_attrs("vid_a")["fps"] == pytest.approx(29.97) and p.video_attrs("vid_a")["num_frames"] == 300
    assert np.array_equal(p.keypoints("vid_a", 100, 170), _sample(300).keypoints[100:170])
    with h5py.File(out) as f:
        assert f["keypoints/vid_a"].chunks == (64, 75, 3) and f["keypoints/vid_a"].compression == "lzf"


def test_h5_writer_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "pose.h5"
    with pytest.raises(UserError):
        with PoseH5Writer(out) as w:
            w.add("a", _sample())
            w.add("a", _sample())
    assert list(tmp_path.iterdir()) == []


def test_reads_openhands_written_h5(tmp_path: Path) -> None:
    # OpenHands' pkl_to_h5 layout: no attributes, visibility (F, N, 1).
    out = tmp_path / "oh.h5"
    s = _sample(12)
    with h5py.File(out, "w") as f:
        f.create_dataset("keypoints/clip1", data=s.keypoints)
        f.create_dataset("visibility/clip1", data=s.confidences[..., None])
    p = PoseH5(out)
    assert p.keypoint_set.name == "openhands75"
    assert p.visibility("clip1").shape == (12, 75)
    assert np.array_equal(p.read("clip1").confidences, s.confidences)


@pytest.mark.parametrize("writer", ["h5", "pkl"])
def test_pose_writers_fsync_the_file_then_rename_then_fsync_the_folder(tmp_path: Path, writer: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Durability through sldata.io: the data reaches the disk before the name does."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("rename", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    out = tmp_path / ("p.h5" if writer == "h5" else "p.pkl")
    if writer == "h5":
        with PoseH5Writer(out) as w:
            w.add("a", _sample())
    else:
        save_pkl(out, _sample())
    monkeypatch.undo()
    renames = [i for i, e in enumerate(events) if e == ("rename", str(out))]
    assert len(renames) == 1, events
    before, after = events[:renames[0]], events[renames[0] + 1:]
    assert before and before[-1][0] == "fsync" and ".sldata-tmp-" in before[-1][1]  # the temporary's data
    assert ("fsync", str(tmp_path)) in after  # then the folder holding the new name
