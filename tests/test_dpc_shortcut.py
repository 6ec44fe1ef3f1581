"""The DPC shortcut and its fixes: per-block augmentation, same-video negatives, diagnostics, padding, signers.

The contrastive task must be solvable only by predicting motion. These tests pin
the pieces that make it so (issue 15): a per-block draw of shear/rotation, the
logits layout of each negatives choice, the video/step diagnostics, padding that
never gives a static future, and synthetic corpora whose signers recur.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from schemas.config_dpc import DPCData
from sldata.errors import UserError
from sldata.pose import PoseH5, PoseH5Writer, PoseSample
from sldata.synthetic_pose import split_signers, write_labeled, write_unlabeled
from sltrain.data.pose_windows import BlockTransform, PoseWindows, index_videos, read_window
from sltrain.data.transforms import draw_block_affines
from sltrain.models.dpc import batch_logits, info_nce, pretext_diagnostics, same_video_logits


def _still_window(frames: int) -> np.ndarray:
    """openhands75 frames of one unmoving, fully detected body (every frame identical)."""
    rng = np.random.default_rng(0)
    kp = np.zeros((frames, 75, 3), np.float32)
    kp[:, :, :2] = rng.uniform(0.3, 0.7, (75, 2))
    kp[:, 11], kp[:, 12] = [0.6, 0.4, 0], [0.4, 0.4, 0]  # shoulders
    kp[:, 41] = 0  # one missing left-hand joint (openhands27 index 10)
    return kp


def _cfg(path: Path = Path("p.h5"), **augment: object) -> DPCData:
    return DPCData(path=path, num_seq=5, seq_len=3, downsample=1, pred_step=2, augment=augment)


def test_augmentation_is_drawn_per_block_by_default_and_per_window_on_request() -> None:
    kp = _still_window(15)
    np.random.seed(0)
    blocks = BlockTransform(_cfg())(kp)  # (S, C, L, V)
    assert blocks.shape == (5, 2, 3, 27) and blocks.dtype == np.float32
    # a still body: frames within a block stay equal, but every block got its own transform
    assert np.allclose(blocks[:, :, :1], blocks)
    firsts = blocks[:, :, 0]
    assert all(not np.allclose(firsts[i], firsts[j], atol=1e-4) for i in range(5) for j in range(i + 1, 5))
    assert np.all(blocks[:, :, :, 10] == 0)  # a missing joint stays zero through normalisation and augmentation
    np.random.seed(0)
    shared = BlockTransform(_cfg(per="window"))(kp)
    assert np.allclose(shared, shared[:1], atol=1e-6)  # one draw for the whole window: identical blocks
    assert not np.allclose(shared[0], BlockTransform(_cfg(), train=False)(kp)[0])  # ...but it did augment
    # evaluation (train=False) and zero std: no augmentation at all
    plain = BlockTransform(_cfg(), train=False)(kp)
    assert np.allclose(plain, plain[:1])
    assert np.array_equal(BlockTransform(_cfg(shear_std=0, rotation_std=0))(kp), plain)


def test_block_affines_follow_openhands_distribution() -> None:
    """Rotation ~ N(0, 0.1 rad) and a shear ~ N(0, 0.1) of one axis, by default."""
    cfg = DPCData(path=Path("p.h5"))
    assert (cfg.augment.per, cfg.augment.shear_std, cfg.augment.rotation_std) == ("block", 0.1, 0.1)
    m = draw_block_affines(20000, 0.1, 0.1, rng=np.random.default_rng(0))
    angle = np.arctan2(m[:, 1, 0], m[:, 0, 0])
    rot_t = np.stack([np.stack([np.cos(angle), np.sin(angle)], 1), np.stack([-np.sin(angle), np.cos(angle)], 1)], 1)
    shear = np.einsum("nij,njk->nik", rot_t, m)  # R^T (R S) = S = [[1, s], [0, 1]]
    assert np.allclose(shear[:, 0, 0], 1) and np.allclose(shear[:, 1, 0], 0) and np.allclose(shear[:, 1, 1], 1)
    for draws in (angle, shear[:, 0, 1]):
        assert abs(draws.mean()) < 0.005 and 0.097 < draws.std() < 0.103
    assert len(set(np.round(angle[:10], 6))) == 10
    one = draw_block_affines(4, 0.1, 0.1, per="window", rng=np.random.default_rng(1))
    assert np.allclose(one, one[:1])


def test_per_block_normalisation_centres_and_scales_each_block_by_its_shoulders() -> None:
    kp = _still_window(15)
    kp[6:9, :, :2] = kp[6:9, :, :2] * 2 + 0.1  # the body moves and grows in block 2 only
    x = BlockTransform(_cfg(normalize="block"), train=False)(kp)
    for s in range(5):
        left, right = x[s, :, :, 3], x[s, :, :, 4]  # openhands27 shoulders
        assert np.allclose((left + right) / 2, 0, atol=1e-6) and np.allclose(np.hypot(*(left - right)), 1)
    w = BlockTransform(_cfg(), train=False)(kp)  # once per window: block 2 keeps its different size
    assert not np.allclose(np.hypot(*(w[2, :, :, 3] - w[2, :, :, 4])), 1)


def test_negatives_logits_layout() -> None:
    torch.manual_seed(0)
    b, p, d, temp = 4, 3, 16, 0.5
    pred, target = torch.randn(b, p, d), torch.randn(b, p, d)
    cos = lambda u, v: F.cosine_similarity(u, v, dim=0) / temp  # noqa: E731
    full = batch_logits(pred, target, temp)
    own = same_video_logits(pred, target, temp)
    assert full.shape == (b * p, b * p) and own.shape == (b * p, p)
    for i in range(b):
        for k in range(p):
            for j in range(b):
                for k2 in range(p):
                    assert torch.isclose(full[i * p + k, j * p + k2], cos(pred[i, k], target[j, k2]), atol=1e-5)
            for k2 in range(p):  # same_video: only its own video's P targets, positive at column k
                assert torch.isclose(own[i * p + k, k2], cos(pred[i, k], target[i, k2]), atol=1e-5)
    loss_b, _ = info_nce(pred, target, temp, negatives="batch")
    loss_v, _ = info_nce(pred, target, temp, negatives="same_video")
    loss_2, _ = info_nce(pred, target, temp, negatives="both")
    assert torch.isclose(loss_b, F.cross_entropy(full, torch.arange(b * p)))
    assert torch.isclose(loss_v, F.cross_entropy(own, torch.arange(p).repeat(b)))
    assert torch.isclose(loss_2, loss_b + loss_v)
    with pytest.raises(ValueError, match="negatives"):
        info_nce(pred, target, negatives="queue")


def test_a_video_fingerprint_solves_batch_negatives_but_not_same_video_and_diagnostics_show_it() -> None:
    """Embeddings that say only *which video* (the shortcut) and nothing about the step."""
    torch.manual_seed(0)
    b, p = 8, 2
    fingerprint = torch.randn(b, 1, 32).expand(b, p, 32).contiguous()
    loss_b, top1_b = info_nce(fingerprint, fingerprint, negatives="batch")
    loss_v, top1_v = info_nce(fingerprint, fingerprint, negatives="same_video")
    assert loss_b.item() < np.log(b * p) - 1.5  # far below chance: the batch task is half solved
    assert loss_v.item() == pytest.approx(np.log(p), abs=1e-4)  # exactly chance: nothing to learn from
    diag = pretext_diagnostics(fingerprint, fingerprint)
    assert diag["top1_video"].item() == 1.0 and diag["top1_step"].item() <= 1 / p
    # an encoder that predicts motion (every block distinct) gets the steps right too
    motion = torch.randn(b, p, 32)
    diag = pretext_diagnostics(motion, motion)
    assert diag["top1_video"].item() == 1.0 and diag["top1_step"].item() == 1.0


def _numbered_pose(path: Path, lengths: list[int]) -> Path:
    """Every frame distinct: frame f of video i has all coordinates = i + (f + 1) / 1000."""
    with PoseH5Writer(path) as w:
        for i, n in enumerate(lengths):
            kp = np.broadcast_to((i + (np.arange(n, dtype=np.float32) + 1) / 1000)[:, None, None], (n, 75, 3)).copy()
            w.add(f"v{i}", PoseSample(kp, np.ones((n, 75), np.float32)))
    return path


def test_padding_never_makes_a_static_future(tmp_path: Path) -> None:
    path = _numbered_pose(tmp_path / "p.h5", [40, 9, 4, 5])
    cfg = DPCData(path=path, num_seq=5, seq_len=2, downsample=2, pred_step=2, short_videos="pad")  # window 20
    assert DPCData(path=path).short_videos == "skip"  # the default: short videos are left out
    pose = PoseH5(path)
    idx = index_videos(pose, cfg)
    # v2 (4 frames -> 2 kept) cannot fill the 4 future frames: skipped even with pad; v3 (5 -> 3) neither
    assert idx.keys == ["v0", "v1"] and idx.padded == 1 and idx.skipped_short == 2
    future = cfg.pred_step * cfg.seq_len
    for key, n in zip(idx.keys, idx.frames):
        for start in range(max(1, n - cfg.window_frames + 1)):
            w = read_window(pose, key, n, start, cfg)[:, 0, 0]
            assert len(np.unique(w[-future:])) == future  # every future frame is a distinct, real frame
            assert not np.isin(w[-future:], w[:-future]).any()  # none of them is a copy of the context
    w = read_window(pose, "v1", 9, 0, cfg)[:, 0, 0]
    # padding repeats the first frame, before the video
    assert np.allclose(w, [1.001] * 5 + [1.001, 1.003, 1.005, 1.007, 1.009])
    assert index_videos(pose, cfg.model_copy(update={"short_videos": "skip"})).keys == ["v0"]


def test_recipe_refuses_the_old_uniform_transform_augmentation(tmp_path: Path) -> None:
    from sltrain.config import build_config
    from sltrain.recipes import build_recipe

    cfg = build_config({"recipe": "dpc", "data": {"path": str(tmp_path / "p.h5"), "transform": {"shear": 0.2}},
                        "trainer": {"out_dir": str(tmp_path), "max_steps": 1, "batch_size": 1}})
    with pytest.raises(UserError, match="data.augment"):
        build_recipe(cfg)


def test_synthetic_corpus_shares_signers_and_labeled_splits_keep_them_apart(tmp_path: Path) -> None:
    path = write_unlabeled(tmp_path / "u.h5", videos=24, seed=0, signers=4, frames=(8, 10), strokes=(1, 2))
    with PoseH5(path) as pose:
        import h5py

        with h5py.File(path) as f:
            who = [f["keypoints"][k].attrs["source"] for k in pose.keys()]
        tilts = {}
        for k, s in zip(pose.keys(), who):
            kp = pose.keypoints(k)
            sh = kp[0, 12, :2] - kp[0, 11, :2]  # right minus left shoulder: the signer's tilt
            tilts.setdefault(s, []).append(np.arctan2(sh[1], sh[0]))
    assert 2 <= len(tilts) <= 4 and max(len(v) for v in tilts.values()) >= 4  # many videos per signer
    for angles in tilts.values():  # one person, one body placement (up to tracking noise)
        assert np.ptp(angles) < 0.1
    data = write_labeled(tmp_path / "l", classes=2, per_class={"train": 8, "dev": 4, "test": 4}, seed=1)
    signers = {s: {r["signer"] for r in csv.DictReader(open(p))} for s, p in data.labels.items()}
    assert not signers["train"] & signers["dev"] and not signers["train"] & signers["test"]
    assert not signers["dev"] & signers["test"]
    assert split_signers(["train", "dev"], 8) == {"train": [0, 1, 2, 3], "dev": [4, 5, 6, 7]}
    with pytest.raises(UserError, match="signers"):
        write_labeled(tmp_path / "x", classes=2, per_class={"train": 1, "dev": 1, "test": 1}, signers=2)


def test_pose_windows_draw_per_block_through_the_dataset(tmp_path: Path) -> None:
    """End to end through PoseWindows: a still video gives blocks that differ only by their augmentation."""
    path = tmp_path / "still.h5"
    with PoseH5Writer(path) as w:
        w.add("still", PoseSample(_still_window(30), np.ones((30, 75), np.float32)))
    np.random.seed(1)
    item = PoseWindows(_cfg(path))[0]
    assert item.shape == (5, 2, 3, 27)
    assert all(not torch.allclose(item[0], item[s], atol=1e-4) for s in range(1, 5))
