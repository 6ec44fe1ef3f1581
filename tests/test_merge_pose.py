"""merge-pose: per-task pose h5 files -> one, bit-exact; clashes and bad inputs refused with nothing written."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from sldata.errors import UserError
from sldata.merge import merge_pose
from sldata.pose import PoseH5, PoseH5Writer, PoseSample
from tests.conftest import assert_no_traceback, invoke_cli


def _sample(frames: int, n: int = 75, seed: int = 0) -> PoseSample:
    rng = np.random.default_rng(seed)
    kp, conf = rng.random((frames, n, 3), dtype=np.float32), rng.random((frames, n), dtype=np.float32)
    kp[:, 33:], conf[:, 33:] = 0, 0  # no hands detected: zeros, as MediaPipe writes them (and compressible)
    return PoseSample(kp, conf, fps=25.0 + seed / 7, width=640, height=480)


def _h5(path: Path, keys: dict[str, int], *, n: int = 75, dtype: str = "float32", mediapipe: str = "0.10.21",
        extra: dict | None = None) -> Path:
    kset = "openhands75" if n == 75 else "holistic543"
    attrs = {"mediapipe_version": mediapipe, "extraction_options": '{"model_complexity": 1}', **(extra or {})}
    with PoseH5Writer(path, keypoint_set=kset, dtype=dtype, root_attrs=attrs) as w:
        for key, seed in keys.items():
            w.add(key, _sample(70 + 13 * seed, n=n, seed=seed), source=f"videos/{key}.mp4")
    return path


def _raw(ds: h5py.Dataset) -> list[tuple]:
    """Every stored chunk as (offset, filter mask, bytes): equal lists mean a bit-exact copy."""
    out = []
    for i in range(ds.id.get_num_chunks()):
        off = ds.id.get_chunk_info(i).chunk_offset
        out.append((off, *ds.id.read_direct_chunk(off)))
    return out


def _digest(*paths: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".sldata-" in p.name)


def test_merge_is_bit_exact_and_combines_provenance(tmp_path: Path) -> None:
    a = _h5(tmp_path / "task0.h5", {"v1": 1, "v3": 3}, mediapipe="0.10.21", extra={"task": "same"})
    b = _h5(tmp_path / "task1.h5", {"v2": 2, "v4": 4, "v5": 5}, mediapipe="0.10.14", extra={"task": "same"})
    c = _h5(tmp_path / "task2.h5", {}, extra={"task": "same"})  # an array task that found no videos
    before = _digest(a, b, c)
    out = tmp_path / "all.h5"
    proc = invoke_cli("sldata", "merge-pose", a, b, c, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["videos"] == 5 and rep["keypoint_set"] == "openhands75"
    assert rep["warnings"] == ["inputs come from several MediaPipe versions: 0.10.14, 0.10.21"]
    assert _digest(a, b, c) == before  # inputs untouched
    with h5py.File(out) as f:
        assert sorted(f["keypoints"]) == ["v1", "v2", "v3", "v4", "v5"]
        for src in (a, b):
            with h5py.File(src) as s:
                for key in s["keypoints"]:
                    for g in ("keypoints", "visibility"):
                        d, e = f[g][key], s[g][key]
                        assert _raw(d) == _raw(e) and d.chunks == e.chunks and d.compression == "lzf"
                        assert d.dtype == e.dtype and dict(d.attrs) == dict(e.attrs)
        assert f.attrs["format"] == "openhands-pose" and f.attrs["keypoint_set"] == "openhands75"
        assert f.attrs["mediapipe_version"] == "0.10.14, 0.10.21"
        assert f.attrs["extraction_options"] == '{"model_complexity": 1}' and f.attrs["task"] == "same"
        assert json.loads(f.attrs["merged_from"]) == [{"file": "task0.h5", "videos": 2},
                                                      {"file": "task1.h5", "videos": 3},
                                                      {"file": "task2.h5", "videos": 0}]
    with PoseH5(out) as p:
        ref = _sample(70 + 13 * 4, seed=4)
        assert np.array_equal(p.keypoints("v4"), ref.keypoints) and p.video_attrs("v4")["fps"] == 25.0 + 4 / 7
    proc = invoke_cli("sldata", "validate", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _leftovers(tmp_path) == []


def test_differing_attributes_are_dropped_with_a_warning(tmp_path: Path) -> None:
    a = _h5(tmp_path / "a.h5", {"x": 1}, extra={"note": "a"})
    b = _h5(tmp_path / "b.h5", {"y": 2}, extra={"note": "b"})
    rep = merge_pose([a, b], tmp_path / "m.h5")
    assert rep.warnings == ["root attribute 'note' differs between inputs (or is missing from some); not kept"]
    with h5py.File(tmp_path / "m.h5") as f:
        assert "note" not in f.attrs


@pytest.mark.parametrize("case", ["duplicate-key", "keypoint-sets"])
def test_clashes_exit_2_and_write_nothing(tmp_path: Path, case: str) -> None:
    a = _h5(tmp_path / "a.h5", {"v1": 1, "v2": 2})
    if case == "duplicate-key":
        b = _h5(tmp_path / "b.h5", {"v2": 5, "v3": 3})
        needle = "1 key(s) occur in more than one input; nothing written: v2: a.h5, b.h5"
    else:
        b = _h5(tmp_path / "b.h5", {"v3": 3}, n=543)
        needle = "the inputs hold different keypoint sets (a.h5: openhands75, b.h5: holistic543)"
    out = tmp_path / "out.h5"
    proc = invoke_cli("sldata", "merge-pose", a, b, "-o", out)
    assert_no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert needle in " ".join(proc.stderr.split()), proc.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def _garble_first_chunk(path: Path, group: str, key: str) -> None:
    with h5py.File(path) as f:
        info = f[group][key].id.get_chunk_info(0)
        assert info.filter_mask == 0  # stored compressed
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(bytes(range(256))[: min(64, info.size)])


def test_garbled_chunk_names_file_and_key(tmp_path: Path) -> None:
    a = _h5(tmp_path / "a.h5", {"v1": 1})
    b = _h5(tmp_path / "b.h5", {"v2": 2, "v3": 3})
    _garble_first_chunk(b, "keypoints", "v3")
    out = tmp_path / "out.h5"
    proc = invoke_cli("sldata", "merge-pose", a, b, "-o", out)
    assert_no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    msg = " ".join(proc.stderr.split())
    assert f"{b} video 'v3': cannot read: " in msg, msg
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and _leftovers(tmp_path) == []


def test_output_that_is_an_input_or_a_directory_is_refused(tmp_path: Path) -> None:
    a = _h5(tmp_path / "a.h5", {"v1": 1})
    b = _h5(tmp_path / "b.h5", {"v2": 2})
    (tmp_path / "link.h5").symlink_to(a)
    os.link(b, tmp_path / "hard.h5")
    (tmp_path / "adir").mkdir()
    before = _digest(a, b)
    for out, needle in ((a, "this output is the input"), (tmp_path / "link.h5", "this output is the input"),
                        (tmp_path / "hard.h5", "this output is the input"), (tmp_path / "adir", "is a directory")):
        proc = invoke_cli("sldata", "merge-pose", a, b, "-o", out)
        assert_no_traceback(proc)
        assert proc.returncode == 2, (out, proc.stderr)
        assert needle in " ".join(proc.stderr.split()), proc.stderr
    assert _digest(a, b) == before and (tmp_path / "adir").is_dir() and not any((tmp_path / "adir").iterdir())
    for args, needle in (((a, a), "given twice"), ((a, tmp_path / "nope.h5"), "no such file"),
                         ((a, tmp_path / "adir"), "is a directory")):
        with pytest.raises(UserError, match=needle):
            merge_pose(list(args), tmp_path / "m.h5")
    not_pose = tmp_path / "plain.h5"
    with h5py.File(not_pose, "w") as f:
        f["x"] = [1]
    (tmp_path / "text.h5").write_text("not hdf5")
    for bad, needle in ((not_pose, "not a pose h5"), (tmp_path / "text.h5", "cannot open as HDF5")):
        proc = invoke_cli("sldata", "merge-pose", a, bad, "-o", tmp_path / "m.h5")
        assert_no_traceback(proc)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "m.h5").exists()


def test_an_output_of_another_command_is_never_replaced(tmp_path: Path) -> None:
    """merge-pose over pkl2h5's output (or the reverse) is refused; over its own earlier output it is fine."""
    from sldata.pack import pkl2h5
    from sldata.pose import save_pkl

    a = _h5(tmp_path / "a.h5", {"v1": 5})
    save_pkl(tmp_path / "pkls" / "v9.pkl", _sample(4))
    packed = tmp_path / "packed.h5"
    assert pkl2h5(tmp_path / "pkls", packed).ok
    before = packed.read_bytes()
    with pytest.raises(UserError, match=r"was written by `sldata pkl2h5`; `sldata merge-pose` does not replace it"):
        merge_pose([a], packed)
    assert packed.read_bytes() == before
    merged = tmp_path / "merged.h5"
    merge_pose([a], merged)
    merge_pose([a], merged)  # its own earlier output
    with pytest.raises(UserError, match=r"was written by `sldata merge-pose`; `sldata pkl2h5` does not replace it"):
        pkl2h5(tmp_path / "pkls", merged)
