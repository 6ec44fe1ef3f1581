"""sign_llava samples: one per clip through FeatureDataset, context, skips by reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sldata.errors import UserError
from sldata.features import FeatureDataset, shard_path
from sldata.mock import write_mock
from sltrain.data.features import SKIP_MISSING_REP, SKIP_PLACEHOLDER, FeatureClips

REPS = ["dino", "pose", "sign2vec"]


def _mock(tmp_path: Path, layout: str = "v2", **kw) -> Path:
    out = tmp_path / f"mock_{layout}"
    args = dict(videos=2, clips=12, splits=["train", "dev"], reps=REPS, seed=3, shard_size=1)
    args.update(kw)
    write_mock(out, layout=layout, **args)
    return out


def _set_translation(root: Path, split: str, edits: dict[tuple[str, str], object]) -> None:
    path = root / f"annotation.{split}.json"
    ann = json.loads(path.read_text())
    for (video, clip), text in edits.items():
        ann[video][clip]["translation"] = text
    path.write_text(json.dumps(ann))  # json writes NaN as a bare literal, like pandas-made files


def test_one_sample_per_clip_same_arrays_as_the_reader(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    ds = FeatureClips(root, "train", REPS)
    view = FeatureDataset(root).split("train")
    assert [(r.video, r.clip) for r in ds.items] == list(view)  # video order, numeric clip order
    assert ds.dims == {"dino": 384, "pose": 32, "sign2vec": 768}
    assert not ds.skipped
    item = ds[13]  # second video, clip "1"
    v, c = ds.items[13].video, ds.items[13].clip
    assert (item["video"], item["clip"]) == (v, c) and c == "1"
    assert item["target"] == view.clip(v, c)["translation"]
    for rep in REPS:
        raw = view.features(v, c, rep)
        assert item["features"][rep].dtype == torch.float32
        assert np.array_equal(item["features"][rep].numpy(), raw.astype(np.float32))
        assert ds.items[13].frames[REPS.index(rep)] == raw.shape[0]


def test_v1_and_v2_give_identical_samples(tmp_path: Path) -> None:
    a = FeatureClips(_mock(tmp_path, "v1"), "dev", REPS, context_clips=2)
    b = FeatureClips(_mock(tmp_path, "v2"), "dev", REPS, context_clips=2)
    assert a.items == b.items
    for i in (0, 11, 23):
        x, y = a[i], b[i]
        assert x["target"] == y["target"] and x["context"] == y["context"]
        for rep in REPS:
            assert torch.equal(x["features"][rep], y["features"][rep])


def test_context_is_previous_clips_in_temporal_order(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    view = FeatureDataset(root).split("train")
    ds = FeatureClips(root, "train", REPS, context_clips=3)
    by_key = {(r.video, r.clip): r for r in ds.items}
    v = view.videos[0]
    tr = {c: view.clip(v, c)["translation"] for c in view.clips(v)}
    assert by_key[(v, "0")].context == ()
    assert by_key[(v, "2")].context == (tr["0"], tr["1"])
    # "10" follows "9" (numeric order, not text order): its context is clips 7, 8, 9
    assert by_key[(v, "10")].context == (tr["7"], tr["8"], tr["9"])
    assert FeatureClips(root, "train", REPS).items[10].context == ()


def test_missing_rep_skipped_and_counted_or_refused(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    view = FeatureDataset(root).split("train")
    v0, v1 = view.videos
    k = view.metadata("pose")[v0]
    with h5py.File(shard_path(root, "pose", "train", k), "a") as f:
        del f[v0]["5"]
    with h5py.File(view.h5_file(v1, "sign2vec"), "a") as f:  # a whole video absent from a rep
        del f[v1]
    ds = FeatureClips(root, "train", REPS)
    assert ds.skipped == {SKIP_MISSING_REP: 13}
    assert ds.skip_counts() == {"skipped/missing-rep": 13}
    assert (v0, "5") not in {(r.video, r.clip) for r in ds.items}
    assert len(ds) == 11
    assert ds.examples[SKIP_MISSING_REP][0] == f"{v0}/5 (pose)"
    # a rep not selected does not matter
    assert len(FeatureClips(root, "train", ["dino"])) == 24
    with pytest.raises(UserError, match=rf"clip {v0}/5 is missing from rep\(s\) pose"):
        FeatureClips(root, "train", REPS, missing_rep="error")


def test_placeholder_texts_skip_keep_error(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    v = FeatureDataset(root).split("train").videos[0]
    _set_translation(root, "train", {(v, "1"): "<none>", (v, "2"): "", (v, "3"): math.nan})
    skip = FeatureClips(root, "train", REPS, context_clips=3)
    assert skip.skipped == {SKIP_PLACEHOLDER: 3} and len(skip) == 21
    clip4 = next(r for r in skip.items if (r.video, r.clip) == (v, "4"))
    assert len(clip4.context) == 1  # placeholders never become context
    keep = FeatureClips(root, "train", REPS, placeholder_text="keep")
    assert len(keep) == 24 and not keep.skipped
    assert [keep.items[i].target for i in (1, 2, 3)] == ["<none>", "", ""]
    with pytest.raises(UserError, match=rf"clip {v}/1 has a placeholder translation"):
        FeatureClips(root, "train", REPS, placeholder_text="error")


def test_bad_reps_and_splits_are_user_errors(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    with pytest.raises(UserError, match="rep\\(s\\) mae not in the dataset"):
        FeatureClips(root, "train", ["dino", "mae"])
    with pytest.raises(UserError, match="no split 'test'"):
        FeatureClips(root, "test", REPS)
    with pytest.raises(UserError, match="not a feature dataset"):
        FeatureClips(tmp_path / "nowhere", "train", REPS)


def test_worker_processes_read_the_same_samples(tmp_path: Path) -> None:
    root = _mock(tmp_path)
    ds = FeatureClips(root, "train", REPS)
    first = [ds[i]["features"]["dino"] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork")
    again = [item["features"]["dino"] for item in loader]
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(again) == len(first)


def test_mock_keywords_are_lower_case_words_of_the_translation() -> None:
    """Sign_LLaVA's multi-task loader picks negatives with `keyword in translation`: keywords must
    be lower-case words that occur in it."""
    import re

    from sldata.mock import mock_annotation

    ann = mock_annotation(np.random.default_rng(0), videos=4, clips=12)
    for clips in ann.values():
        for entry in clips.values():
            words = set(re.findall(r"[a-z]+", entry["translation"].lower()))
            assert entry["keywords"] and all(k == k.lower() and k in words for k in entry["keywords"])
            assert entry["keywords"] == sorted(set(entry["keywords"]))
