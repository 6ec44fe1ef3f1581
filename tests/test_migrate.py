"""`sldata shard`: v1/v2 → v2, bit-exact, atomic, verified, killable, never touching its input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sldata.errors import UserError
from sldata.features import FeatureDataset, detect_layout, metadata_path, shard_path, v1_path
from sldata.io import TMP_MARK
from sldata.shard import default_dst, plan_shard, shard
from sldata.shard.copy import run_job as _REAL_RUN_JOB
from sldata.upgrade import upgrade_annotation
from sldata.validate import validate

from .conftest import BIN, assert_no_traceback, invoke_cli

REPS = ["dino", "mae", "pose", "sign2vec"]


# --- helpers ---------------------------------------------------------------------------

def _sha256_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _enrich(root: Path) -> None:
    """Make a v1 mock less uniform: chunked + gzip clips with attributes, float32, group attrs."""
    with h5py.File(v1_path(root, "pose", "train"), "a") as f:
        for video in f:
            g = f[video]
            g.attrs["source"] = f"videos/{video}.mp4"
            g.attrs["fps"] = 29.97
            data = g["0"][()]
            del g["0"]
            ds = g.create_dataset("0", data=data, chunks=(4, data.shape[1]), compression="gzip",
                                  compression_opts=7, shuffle=True)
            ds.attrs["frames"] = np.arange(data.shape[0], dtype=np.int32)
    with h5py.File(v1_path(root, "mae", "dev"), "a") as f:
        for video in f:
            for clip in list(f[video]):
                data = f[video][clip][()].astype(np.float32)
                del f[video][clip]
                f[video].create_dataset(clip, data=data, chunks=True, compression="lzf")


def _contents(root: Path) -> dict[tuple[str, str, str, str], Any]:
    """Every clip of every rep and split: bytes, dtype, attributes, chunking, filters (via the reader)."""
    out: dict[tuple[str, str, str, str], Any] = {}
    with FeatureDataset(root) as ds:
        for split in ds.splits:
            view = ds.split(split)
            for rep in ds.reps:
                for video in view.videos:
                    g = view.group(video, rep)
                    gattrs = {k: np.asarray(v).tolist() for k, v in g.attrs.items()}
                    for clip in g:
                        d = g[clip]
                        out[(split, rep, video, clip)] = (
                            d[()].tobytes(), d.dtype.str, d.shape, d.chunks, d.compression, d.compression_opts,
                            d.shuffle, {k: np.asarray(v).tolist() for k, v in d.attrs.items()}, gattrs)
    return out


def _assert_bit_exact(src: Path, dst: Path) -> None:
    a, b = _contents(src), _contents(dst)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key


def _assert_valid(root: Path) -> None:
    report = validate(root)
    assert report.ok and report.layout == "v2", [f.to_dict() for f in report.findings]
    assert not report.warnings, [f.to_dict() for f in report.warnings]


def _metadata(root: Path, rep: str, split: str) -> dict[str, int]:
    return json.loads(metadata_path(root, rep, split).read_text())


# --- round trip --------------------------------------------------------------------------

def test_round_trip_v1_v2_v2_bit_exact(mock_v1: Path, tmp_path: Path) -> None:
    _enrich(mock_v1)
    before = _sha256_tree(mock_v1)
    a, b = tmp_path / "a", tmp_path / "b"
    result = shard(mock_v1, a, size=2)
    assert result.written and result.plan.src_layout == "v1"
    _assert_bit_exact(mock_v1, a)
    result = shard(a, b, size=1)
    assert result.written and result.plan.src_layout == "v2"
    _assert_bit_exact(mock_v1, b)
    assert _sha256_tree(mock_v1) == before
    for root, size in ((a, 2), (b, 1)):
        _assert_valid(root)
        for split in ("train", "dev"):
            videos = list(json.loads((mock_v1 / f"annotation.{split}.json").read_text()))
            for rep in REPS:
                # annotation order, `size` videos per shard, ints in the metadata, one file per shard
                assert _metadata(root, rep, split) == {v: i // size for i, v in enumerate(videos)}
                assert sorted(p.name for p in (root / rep).glob(f"{rep}.{split}.*.h5")) == sorted(
                    f"{rep}.{split}.{k}.h5" for k in range((len(videos) + size - 1) // size))
            expected, _ = upgrade_annotation(json.loads((mock_v1 / f"annotation.{split}.json").read_text()))
            assert json.loads((root / f"annotation.{split}.json").read_text()) == expected
    # v2 → v2 keeps the v2 annotation byte for byte
    assert (a / "annotation.train.json").read_bytes() == (b / "annotation.train.json").read_bytes()
    # same size again: every shard is exactly a source file, copied byte for byte
    c = tmp_path / "c"
    assert shard(b, c, size=1).written
    _assert_valid(c)
    assert _sha256_tree(c) == _sha256_tree(b)
    with h5py.File(shard_path(b, "pose", "train", 0)) as f:
        v = next(iter(f))
        assert f[v]["0"].compression == "gzip" and f[v]["0"].compression_opts == 7 and f[v]["0"].chunks == (4, 32)


def test_recompress_and_select(mock_v1: Path, tmp_path: Path) -> None:
    out = tmp_path / "gz"
    result = shard(mock_v1, out, size=2, compression="gzip:4", reps=["dino", "pose"], splits=["train"])
    assert result.written
    assert sorted(p.name for p in out.iterdir()) == ["annotation.train.json", "dino", "pose"]
    _assert_valid(out)
    with FeatureDataset(mock_v1) as src, FeatureDataset(out) as dst:
        s, d = src.split("train"), dst.split("train")
        for video, clip in s:
            for rep in ("dino", "pose"):
                x, y = s.features(video, clip, rep), d.features(video, clip, rep)
                assert x.dtype == y.dtype and np.array_equal(x, y)
                ds = d.group(video, rep)[clip]
                assert ds.compression == "gzip" and ds.compression_opts == 4
    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "bad", "--compression", "zstd")
    assert proc.returncode == 2 and "--compression" in proc.stderr
    assert_no_traceback(proc)
    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "bad", "--reps", "dino,nope")
    assert proc.returncode == 2 and "nope" in proc.stderr and not (tmp_path / "bad").exists()


# --- the CLI as a user runs it ----------------------------------------------------------------

def test_default_arguments_quick_start(tmp_path: Path) -> None:
    assert invoke_cli("sldata", "mock", "--quiet", cwd=tmp_path).returncode == 0
    proc = invoke_cli("sldata", "shard", "--size", "1000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    out = tmp_path / "mock_data_multi"
    assert detect_layout(out).kind == "v2" and "verified" in proc.stdout
    assert all(set(_metadata(out, r, s).values()) == {0} for r in REPS for s in ("train", "dev"))
    proc = invoke_cli("sldata", "validate", "mock_data_multi/", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # an existing non-empty DST is refused, untouched; --overwrite replaces it (trailing slash on SRC)
    marker = out / "keep.txt"
    marker.write_text("mine")
    proc = invoke_cli("sldata", "shard", "mock_data/", "--size", "4", cwd=tmp_path)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and marker.read_text() == "mine"
    assert_no_traceback(proc)
    # --overwrite replaces only a directory holding nothing but a dataset: the user's file stays
    proc = invoke_cli("sldata", "shard", "mock_data/", "--size", "4", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 2 and "did not write" in proc.stderr and marker.read_text() == "mine"
    assert_no_traceback(proc)
    marker.unlink()
    proc = invoke_cli("sldata", "shard", "mock_data/", "--size", "4", "--overwrite", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    videos = list(json.loads((tmp_path / "mock_data/annotation.train.json").read_text()))
    assert _metadata(out, "dino", "train") == {v: i // 4 for i, v in enumerate(videos)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock_data", "mock_data_multi"]
    assert default_dst("mock_data/") == Path("mock_data_multi")


def test_empty_dst_dir_is_fine_and_dst_inside_src_refused(mock_v1: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert shard(mock_v1, empty, size=5).written
    _assert_valid(empty)
    for bad in (mock_v1, mock_v1 / "inner", tmp_path):
        proc = invoke_cli("sldata", "shard", mock_v1, bad, "--overwrite")
        assert proc.returncode == 2 and "must not be SRC" in proc.stderr, bad
    assert detect_layout(mock_v1).kind == "v1"
    with pytest.raises(UserError, match="--size"):
        plan_shard(mock_v1, tmp_path / "x", size=0)


def test_dst_that_is_a_file_is_exit_2_and_untouched(mock_v1: Path, tmp_path: Path) -> None:
    for content in (b"", b"mine"):
        dst = tmp_path / "afile"
        dst.write_bytes(content)
        for extra in ((), ("--overwrite",)):
            proc = invoke_cli("sldata", "shard", mock_v1, dst, "--size", "5", *extra)
            assert_no_traceback(proc)
            assert proc.returncode == 2 and "not a directory" in proc.stderr, (content, extra, proc.stderr)
            assert dst.read_bytes() == content
    assert not list(tmp_path.glob("afile.sldata-tmp-*"))


def test_dry_run_prints_plan_writes_nothing(mock_v1: Path, tmp_path: Path) -> None:
    listing = sorted(p.name for p in tmp_path.rglob("*"))
    proc = invoke_cli("sldata", "shard", mock_v1, "--size", "2", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["written"] is False and report["dst"] == str(tmp_path / "mock_data_multi")
    assert {(i["rep"], i["split"]) for i in report["items"]} == {(r, s) for r in REPS for s in ("train", "dev")}
    assert all(i["videos_per_shard"] == [2, 1] and i["clips"] == 36 and i["bytes"] > 0 for i in report["items"])
    assert report["bytes"] == sum(i["bytes"] for i in report["items"])
    proc = invoke_cli("sldata", "shard", mock_v1, "--size", "2", "--dry-run")
    assert proc.returncode == 0 and "dry run: nothing written" in proc.stdout and "2 + 1" in proc.stdout
    assert sorted(p.name for p in tmp_path.rglob("*")) == listing


# --- problems in the source ---------------------------------------------------------------------

def test_missing_and_extra_videos_are_reported(mock_v1: Path, tmp_path: Path) -> None:
    videos = list(json.loads((mock_v1 / "annotation.train.json").read_text()))
    with h5py.File(v1_path(mock_v1, "pose", "train"), "a") as f:
        del f[videos[1]]
    with h5py.File(v1_path(mock_v1, "dino", "train"), "a") as f:
        f.create_group("stray_video").create_dataset("0", data=np.zeros((3, 384), np.float16))
        del f[videos[0]]["11"]
    before = _sha256_tree(mock_v1)

    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "strict", "--size", "2", "--strict", "--json")
    assert proc.returncode == 1 and not (tmp_path / "strict").exists()
    assert json.loads(proc.stdout)["ok"] is False
    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "strict", "--size", "2", "--strict", "--quiet")
    assert proc.returncode == 1 and "--strict: 2 annotated" in proc.stderr and not (tmp_path / "strict").exists()

    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "out", "--size", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    found = {(f["code"], f["rep"], f["video"], f["clip"]) for f in json.loads(proc.stdout)["findings"]}
    assert found == {("video-missing", "pose", videos[1], None), ("extra-video", "dino", "stray_video", None),
                     ("clip-missing", "dino", videos[0], "11")}
    out = tmp_path / "out"
    assert _metadata(out, "pose", "train") == {videos[0]: 0, videos[2]: 0}  # shards stay full
    assert "stray_video" not in _metadata(out, "dino", "train")
    # the result mirrors the source: validate flags the same absent data, nothing else
    report = validate(out)
    assert {(f.code, f.rep, f.video) for f in report.errors} == {("video-missing", "pose", videos[1]),
                                                                ("clip-missing", "dino", videos[0])}
    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "out2", "--size", "2")
    assert proc.returncode == 0 and "video-missing" in proc.stdout and "stray_video" in proc.stdout
    assert _sha256_tree(mock_v1) == before


@pytest.mark.parametrize("damage, size", [("garbage", "2"), ("truncated", "2"),
                                          ("video-is-a-dataset", "2"), ("video-is-a-dataset", "1000")])
def test_broken_source_is_a_clear_error_and_no_dst(mock_v1: Path, tmp_path: Path, damage: str, size: str) -> None:
    path = v1_path(mock_v1, "mae", "dev")
    if damage == "garbage":
        path.write_bytes(b"this is not hdf5" * 100)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:4096])
    else:  # another tool wrote a video as one dataset instead of a group of clips
        with h5py.File(path, "a") as h:
            video = next(iter(h))
            del h[video]
            h.create_dataset(video, data=np.zeros((3, 768), np.float16))
    proc = invoke_cli("sldata", "shard", mock_v1, tmp_path / "out", "--size", size)
    assert proc.returncode == 2 and "mae.dev.h5" in proc.stderr, proc.stderr
    assert_no_traceback(proc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock_data"]


def test_not_a_dataset_is_exit_2(tmp_path: Path) -> None:
    proc = invoke_cli("sldata", "shard", "--size", "3", cwd=tmp_path)
    assert proc.returncode == 2 and "mock_data" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = invoke_cli("sldata", "shard", "empty", cwd=tmp_path)
    assert proc.returncode == 2 and "not a feature dataset" in proc.stderr
    assert_no_traceback(proc)


# --- atomicity: SIGKILL mid-run, then rerun -------------------------------------------------------

def _big_v1(root: Path, videos: int = 240, clips: int = 4, t: int = 128, d: int = 1152) -> None:
    """~280 MB of float16 in one rep, written fast from one buffer (enough to kill mid-copy)."""
    buf = np.random.default_rng(0).standard_normal((t, d), dtype=np.float32).astype(np.float16)
    root.mkdir()
    ann = {}
    with h5py.File(v1_path(root, "dino", "train"), "w") as f:
        for i in range(videos):
            vid = f"video{i:04d}"
            g = f.create_group(vid)
            for c in range(clips):
                g.create_dataset(str(c), data=buf[: t - c])
            ann[vid] = {str(c): {"translation": f"clip {c} of {vid}", "paraphrases": []} for c in range(clips)}
    (root / "annotation.train.json").write_text(json.dumps(ann))


def test_sigkill_mid_run_then_rerun(tmp_path: Path) -> None:
    src, dst = tmp_path / "big", tmp_path / "big_multi"
    _big_v1(src)
    before = _sha256_tree(src)
    proc = subprocess.Popen([str(BIN / "sldata"), "shard", str(src), "--size", "20", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    stale: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        stale = [p for p in tmp_path.iterdir() if TMP_MARK in p.name]
        if stale and any((stale[0] / "dino").glob("*.h5")):  # copying has begun
            break
        time.sleep(0.002)
    assert proc.poll() is None, "shard finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not dst.exists() and stale and stale[0].exists()  # half a result, under a temporary name only
    assert _sha256_tree(src) == before

    rerun = invoke_cli("sldata", "shard", src, "--size", "20", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["removed_stale"] == [str(stale[0])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big", "big_multi"]
    assert _sha256_tree(src) == before
    _assert_valid(dst)
    assert len(list((dst / "dino").glob("dino.train.*.h5"))) == 12
    with h5py.File(v1_path(src, "dino", "train")) as a, h5py.File(shard_path(dst, "dino", "train", 11)) as b:
        for vid in b:
            for clip in b[vid]:
                assert b[vid][clip].dtype == a[vid][clip].dtype
                assert np.array_equal(b[vid][clip][()], a[vid][clip][()])


def test_verification_catches_a_result_that_differs(mock_v1: Path, tmp_path: Path) -> None:
    from sldata.shard import verify

    out = tmp_path / "out"
    result = shard(mock_v1, out, size=2)
    assert verify(result.plan, out) == []  # the finished result passes its own check
    video = next(iter(_metadata(out, "mae", "dev")))
    with h5py.File(shard_path(out, "mae", "dev", 0), "a") as f:
        data = f[video]["3"][()]
        del f[video]["3"]
        f[video].create_dataset("3", data=data[:-1])  # one frame short
    assert [(f.code, f.video, f.message) for f in verify(result.plan, out)] == [
        ("copy-mismatch", video, "clips, shapes or dtypes differ from the source")]
    meta = metadata_path(out, "pose", "train")
    meta.write_text(json.dumps({v: 0 for v in _metadata(out, "pose", "train")}))
    assert ("metadata_pose.train.json", "missing or differs from the plan") in [
        (Path(f.file).name, f.message) for f in verify(result.plan, out)]


def test_v2_source_metadata_disagreeing_with_shards_is_reported(mock_v2: Path, tmp_path: Path) -> None:
    meta = metadata_path(mock_v2, "dino", "train")
    mapping = json.loads(meta.read_text())
    first = next(iter(mapping))
    meta.write_text(json.dumps({**{v: str(k) for v, k in mapping.items()}, first: 1}))  # strings are fine
    result = shard(mock_v2, tmp_path / "out", size=3)
    assert [(f.code, f.rep, f.video) for f in result.plan.findings] == [("metadata-mismatch", "dino", first)]
    # the result follows the shards' contents and is consistent again
    _assert_valid(tmp_path / "out")
    assert _metadata(tmp_path / "out", "dino", "train")[first] == 0
    meta.write_text(json.dumps(mapping))  # the source's true metadata: now both read the same bytes
    _assert_bit_exact(mock_v2, tmp_path / "out")


def test_verification_of_whole_file_copies(mock_v1: Path, tmp_path: Path) -> None:
    from sldata.shard import verify

    out = tmp_path / "out"
    result = shard(mock_v1, out, size=10)  # every split fits one shard: copied as files
    assert all(i.whole_files for i in result.plan.items)
    assert (out / "dino/dino.train.0.h5").read_bytes() == \
        v1_path(mock_v1, "dino", "train").read_bytes()
    _assert_valid(out)
    assert verify(result.plan, out) == []
    with h5py.File(shard_path(out, "dino", "train", 0), "a") as f:  # same size, one video unlinked
        del f[next(iter(f))]
    [found] = verify(result.plan, out)
    assert Path(found.file).name == "dino.train.0.h5"
    assert re.fullmatch("size differs from its source dino.train.h5|holds 2 videos, planned 3", found.message)
    path = shard_path(out, "pose", "dev", 0)
    path.write_bytes(path.read_bytes() + b"\0")
    assert ("pose.dev.0.h5", "size differs from its source pose.dev.h5") in [
        (Path(f.file).name, f.message) for f in verify(result.plan, out)]


def _copy_but_die_on_shard_1(job: Any) -> Any:
    """A copy worker that is killed on one shard file, every time (as the OOM killer would)."""
    if job.out.name == "mae.train.1.h5":
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_RUN_JOB(job)


def test_a_worker_killed_on_its_shard_file_stops_the_run(mock_v1: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy worker that dies twice on one shard file (killed, out of memory) is that file's failure:
    a UserError naming it (exit 2), nothing renamed into place, no temporary left, the input untouched."""
    from sldata.shard import copy

    before = _sha256_tree(mock_v1)
    # module-level, so it reaches the workers whether the pool forks or spawns (a loaded
    # MediaPipe or another thread earlier in the session makes it spawn)
    monkeypatch.setattr(copy, "run_job", _copy_but_die_on_shard_1)
    with pytest.raises(UserError, match=r"^mae.train.1.h5: worker process died on each of 2 attempts \(killed by "
                                        r"SIGKILL\).*nothing was renamed into place$"):
        shard(mock_v1, tmp_path / "out", size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock_data"]
    assert _sha256_tree(mock_v1) == before


def test_every_shard_file_holds_exactly_the_plans_videos(mock_v2: Path, tmp_path: Path) -> None:
    """The plan decides the boundaries once; the copy writes those files, in the plan's order."""
    plan = plan_shard(mock_v2, tmp_path / "out", size=2)
    result = shard(mock_v2, tmp_path / "out", size=2)
    assert [i.shards for i in result.plan.items] == [i.shards for i in plan.items]
    for item in plan.items:
        for k, videos in enumerate(item.shards):
            with h5py.File(shard_path(tmp_path / "out", item.rep, item.split, k)) as f:
                assert sorted(f) == sorted(videos)
        assert _metadata(tmp_path / "out", item.rep, item.split) == item.assignment()
    assert [i.to_dict() for i in result.plan.items] == [i.to_dict() for i in plan.items]  # bytes included


def test_root_attributes_of_the_source_file_reach_every_shard(mock_v1: Path, tmp_path: Path) -> None:
    with h5py.File(v1_path(mock_v1, "dino", "train"), "a") as f:
        f.attrs["made_by"] = "extract_dino.py"
        f.attrs["fps"] = np.float32(25.0)
    out = tmp_path / "out"
    assert shard(mock_v1, out, size=1).written
    shards = sorted((out / "dino").glob("dino.train.*.h5"))
    assert len(shards) == 3
    for path in shards:
        with h5py.File(path) as f:
            assert f.attrs["made_by"] == "extract_dino.py"
            assert f.attrs["fps"].dtype == np.float32 and f.attrs["fps"] == 25.0
    _assert_valid(out)
