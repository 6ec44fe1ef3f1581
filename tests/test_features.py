"""The feature-dataset reader: layouts, clip order, lazy fork/spawn-safe reads."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from sldata.errors import UserError
from sldata.features import FeatureDataset, detect_layout, shard_path
from sldata.mock import write_mock

from .conftest import assert_no_traceback, invoke_cli


def test_detects_both_layouts(mock_v1: Path, mock_v2: Path) -> None:
    assert detect_layout(mock_v1).kind == "v1"
    assert detect_layout(mock_v2).kind == "v2"
    assert detect_layout(mock_v1.parent / "nothing") is None


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_numeric_clip_order_with_12_clips(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "d"
    write_mock(root, layout=layout, videos=2, clips=13, splits=["train"], reps=["pose"], seed=3)
    ds = FeatureDataset(root)
    split = ds.split("train")
    for v in split.videos:
        assert split.clips(v) == [str(i) for i in range(13)]  # "10" after "9", not after "1"


def test_v1_and_v2_hold_the_same_arrays(tmp_path: Path) -> None:
    write_mock(tmp_path / "a", layout="v1", videos=3, seed=7)
    write_mock(tmp_path / "b", layout="v2", videos=3, seed=7, shard_size=2)
    a, b = FeatureDataset(tmp_path / "a"), FeatureDataset(tmp_path / "b")
    for split in ("train", "dev"):
        sa, sb = a.split(split), b.split(split)
        assert sa.videos == sb.videos
        for v, c in sa:
            assert sa.clip(v, c) == sb.clip(v, c)
            for rep in ("dino", "mae", "pose", "sign2vec"):
                x, y = sa.features(v, c, rep), sb.features(v, c, rep)
                assert x.dtype == np.float16 and np.array_equal(x, y)
    t = a.split("train")
    v, c = next(iter(t))
    assert t.features(v, c, "dino").shape[1] == 384
    assert t.features(v, c, "sign2vec").shape[0] == max(1, t.features(v, c, "dino").shape[0] // 2)


def test_mock_is_deterministic(tmp_path: Path) -> None:
    write_mock(tmp_path / "a", seed=5, videos=2)
    write_mock(tmp_path / "b", seed=5, videos=2)
    for name in ("annotation.train.json", "dino.train.h5"):
        with h5py.File(tmp_path / "a" / "dino.train.h5") as fa, h5py.File(tmp_path / "b" / "dino.train.h5") as fb:
            for v in fa:
                for c in fa[v]:
                    assert np.array_equal(fa[v][c][()], fb[v][c][()])
    assert (tmp_path / "a/annotation.train.json").read_bytes() == (tmp_path / "b/annotation.train.json").read_bytes()


def test_metadata_shard_index_as_string(mock_v2: Path) -> None:
    meta = mock_v2 / "pose" / "metadata_pose.train.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({k: str(v) for k, v in data.items()}))
    split = FeatureDataset(mock_v2).split("train")
    v = split.videos[-1]
    assert split.h5_file(v, "pose") == shard_path(mock_v2, "pose", "train", data[v])
    assert split.features(v, "0", "pose").shape[1] == 32


def test_shard_paths_come_from_layout_not_metadata_name(mock_v2: Path, tmp_path: Path) -> None:
    # A dataset directory that was renamed/moved still reads: paths are built from root/rep.
    moved = tmp_path / "moved.dir"
    mock_v2.rename(moved)
    split = FeatureDataset(moved).split("dev")
    v = split.videos[0]
    assert split.h5_file(v, "mae").parent == moved / "mae"
    assert split.features(v, "11", "mae").shape[1] == 768


class _ClipDataset(torch.utils.data.Dataset):
    def __init__(self, root: Path):
        self.ds = FeatureDataset(root)  # opened in the parent, no handle yet
        self.items = list(self.ds.split("train"))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        v, c = self.items[i]
        return float(self.ds.split("train").features(v, c, "pose").astype(np.float32).sum())


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_dataloader_workers_read_lazily(mock_v2: Path, ctx: str) -> None:
    ds = _ClipDataset(mock_v2)
    # touch a handle in the parent first: workers must not reuse it
    expected = [ds[i] for i in range(len(ds))]
    pickle.dumps(ds.ds)  # picklable for spawn
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=ctx)
    got = torch.cat([b for b in loader]).tolist()
    assert np.allclose(got, expected)


def test_missing_split_is_a_user_error(mock_v1: Path) -> None:
    with pytest.raises(UserError, match="no split 'test'"):
        FeatureDataset(mock_v1).split("test")


def test_mock_cli_defaults_and_refusal(tmp_path: Path) -> None:
    p = invoke_cli("sldata", "mock", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "mock_data" / "annotation.train.json").exists()
    p = invoke_cli("sldata", "mock", "--layout", "v2", "--quiet", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "mock_data_multi" / "dino" / "metadata_dino.train.json").exists()
    p = invoke_cli("sldata", "mock", "--quiet", cwd=tmp_path)
    assert p.returncode == 2 and "--overwrite" in p.stderr
    assert_no_traceback(p)
    p = invoke_cli("sldata", "mock", "x", "--layout", "v3", cwd=tmp_path)
    assert p.returncode == 2
    assert_no_traceback(p)


@pytest.mark.parametrize("args, needle", [
    (("x", "--splits", "tr ain"), "--splits"),
    (("x", "--reps", "a/b"), "--reps"),
    (("x", "--reps", "a.b"), "--reps"),
    (("x", "--splits", "train,dev,train"), "repeated"),
    (("afile", "--overwrite"), "not a directory"),
])
def test_mock_refuses_unusable_names_and_file_out(tmp_path: Path, args: tuple, needle: str) -> None:
    (tmp_path / "afile").write_text("keep")
    p = invoke_cli("sldata", "mock", *args, "--quiet", cwd=tmp_path)
    assert_no_traceback(p)
    assert p.returncode == 2 and needle in p.stderr, p.stderr
    assert not (tmp_path / "x").exists() and (tmp_path / "afile").read_text() == "keep"
