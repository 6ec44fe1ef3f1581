"""DPC pieces: joint selection, normalisation, augmentation, graph, encoder, InfoNCE layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from schemas.config import PoseTransformConfig, STGCNConfig
from schemas.config_dpc import DPCData, DPCModel
from sldata.pose import PoseH5, PoseH5Writer, PoseSample
from sltrain.data.pose_windows import PoseWindows, index_videos, read_window
from sltrain.data.transforms import OPENHANDS27, PoseTransform, center_and_scale, select_joints, shear_rotate
from sltrain.models.dpc import DPC, info_nce
from sltrain.models.graph import EDGES27, EDGES75, adjacency, hop_distance
from sltrain.models.stgcn import STGCNEncoder


def test_openhands27_is_openhands_preset() -> None:
    # OpenHands PoseSelect "mediapipe_holistic_minimal_27" (openhands/datasets/pose_transforms.py)
    assert OPENHANDS27 == (0, 2, 5, 11, 12, 13, 14, 33, 37, 38, 41, 42, 45, 46, 49, 50, 53,
                           54, 58, 59, 62, 63, 66, 67, 70, 71, 74)
    kp = np.arange(10 * 75 * 3, dtype=np.float32).reshape(10, 75, 3)
    assert np.array_equal(select_joints(kp, "openhands27"), kp[:, list(OPENHANDS27)])


def test_center_and_scale_uses_shoulders_and_keeps_missing_zero() -> None:
    x = np.zeros((2, 4, 27), dtype=np.float32)  # (C, T, V)
    x[:, :, 3] = np.array([0.6, 0.4])[:, None]  # left shoulder
    x[:, :, 4] = np.array([0.4, 0.4])[:, None]  # right shoulder
    x[:, :, 0] = np.array([0.5, 0.2])[:, None]  # nose
    x[:, 2, 7] = [0.7, 0.6]  # a left wrist in one frame; elsewhere missing
    y = center_and_scale(x, (3, 4))
    assert np.allclose(y[:, :, 3].T, [0.5, 0.0]) and np.allclose(y[:, :, 4].T, [-0.5, 0.0])
    assert np.allclose(y[:, :, 0].T, [0.0, -1.0])
    assert np.allclose(y[:, 2, 7], [1.0, 1.0])
    assert np.all(y[:, [0, 1, 3], 7] == 0) and np.all(y[:, :, 10] == 0)
    # per frame: a frame whose shoulders moved is normalised by its own shoulders
    x2 = x.copy()
    x2[:, 1] *= 2
    assert np.allclose(center_and_scale(x2, (3, 4), frame_level=True)[:, :, 0].T, [0.0, -1.0])
    # no shoulders anywhere: left as is rather than divided by zero
    z = np.zeros_like(x)
    z[:, :, 0] = 0.3
    assert np.array_equal(center_and_scale(z, (3, 4)), z)


def test_shear_rotation_is_rigid_when_only_rotating_and_identity_when_off() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 27)).astype(np.float32)
    x[:, :, 9] = 0
    assert np.array_equal(shear_rotate(x, 0.0, 0.0), x)
    y = shear_rotate(x, 0.0, 30.0, rng=np.random.default_rng(1))
    assert not np.allclose(y, x)
    assert np.allclose(np.hypot(y[0], y[1]), np.hypot(x[0], x[1]), atol=1e-5)
    assert np.all(y[:, :, 9] == 0)
    sheared = shear_rotate(x, 0.3, 0.0, rng=np.random.default_rng(2))
    assert not np.allclose(np.hypot(sheared[0], sheared[1]), np.hypot(x[0], x[1]))


def test_pose_transform_output_layout() -> None:
    kp = np.random.default_rng(0).random((12, 75, 3), dtype=np.float32)
    out = PoseTransform(PoseTransformConfig(coords=3, normalize=False), train=False)(kp)
    assert out.shape == (3, 12, 27) and out.flags["C_CONTIGUOUS"] and out.dtype == np.float32
    assert np.array_equal(out, kp[:, list(OPENHANDS27)].transpose(2, 0, 1))
    two = PoseTransform(PoseTransformConfig(joints="openhands75", normalize=False), train=False)(kp)
    assert np.array_equal(two, kp[..., :2].transpose(2, 0, 1))


def test_graph_is_connected_and_normalised() -> None:
    assert len(EDGES27) == 27 and len(set(map(frozenset, EDGES27))) == 27
    assert np.all(hop_distance(27, EDGES27, 0) <= 27)
    assert np.all(hop_distance(75, EDGES75, 0) <= 75)
    for name, v, edges in (("openhands27", 27, EDGES27), ("openhands75", 75, EDGES75)):
        a = adjacency(name)
        assert a.shape == (3, v, v)
        assert np.all(np.diag(a[0]) > 0)  # every joint hears itself
        links = (a > 0).sum(axis=0)
        for i, j in edges:  # each skeleton edge carries messages both ways, in exactly one subset
            assert links[i, j] == 1 and links[j, i] == 1
        assert links.sum() == v + 2 * len(set(map(frozenset, edges)))
        for k in range(3):  # each subset averages over the neighbours it holds
            col = a[k].sum(axis=0)
            assert np.allclose(col[col > 0], 1.0)


def _tiny_model(num_seq: int = 4, pred_step: int = 2) -> DPC:
    torch.manual_seed(0)
    return DPC(2, "openhands27", DPCModel(encoder=STGCNConfig(channels=[8, 16], temporal_kernel=3)), num_seq, pred_step)


def test_info_nce_oracle_gets_minimum_loss_and_full_top1() -> None:
    torch.manual_seed(0)
    target = torch.randn(6, 3, 32)
    loss, top1 = info_nce(target.clone(), target)
    assert top1.item() == 1.0
    # every other assignment of predictions to (b, k) slots does worse
    for perm in (torch.randperm(18), torch.roll(torch.arange(18), 1)):
        shuffled = target.reshape(18, 32)[perm].reshape(6, 3, 32)
        worse, acc = info_nce(shuffled, target)
        assert worse.item() > loss.item() and acc.item() < 1.0


def test_openhands_flattening_keeps_videos_but_interleaves_steps() -> None:
    """OpenHands flattens (B, P, D) with `permute(0, 2, 1).view(B*P, D)`; ours with `reshape(B*P, D)`.

    Theirs keeps every row inside its own video (so videos are never mixed), but a
    row holds feature dimensions of *different steps* interleaved: row `b*P + r` is
    not step r's embedding but a mixture of all P steps of video b.
    """
    b, p, d = 3, 2, 8
    code = torch.tensor([[[1000 * i + 100 * k + j for j in range(d)] for k in range(p)] for i in range(b)],
                        dtype=torch.float32)  # entry [b, k, d] encodes (video, step, dim)
    theirs = code.permute(0, 2, 1).contiguous().view(b * p, d)
    ours = code.reshape(b * p, d)
    for i in range(b):
        for r in range(p):
            row = theirs[i * p + r]
            assert torch.all(torch.div(row, 1000, rounding_mode="floor") == i)  # the right video...
            steps = set(torch.div(row % 1000, 100, rounding_mode="floor").long().tolist())
            assert steps == set(range(p))  # ...but every step's features mixed in one row
            assert torch.equal(ours[i * p + r], code[i, r])  # ours: row b*P+k is exactly [b, k]
    # so an oracle that predicts the true future, flattened as theirs, is no longer the
    # best candidate for its step: at most a mixture that looks like its own video
    torch.manual_seed(0)
    target = torch.randn(6, p, 32)
    mixed = target.permute(0, 2, 1).contiguous().view(6, p, 32)
    _, top1 = info_nce(mixed, target, negatives="same_video")
    assert top1.item() < 1.0


def test_info_nce_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        info_nce(torch.zeros(2, 3, 4), torch.zeros(3, 2, 4))


def test_dpc_targets_are_the_future_blocks_of_the_same_sample() -> None:
    model = _tiny_model().eval()
    x = torch.randn(3, 4, 2, 5, 27)
    with torch.no_grad():
        pred, target = model(x)
        assert pred.shape == target.shape == (3, 2, 16)
        for b in range(3):
            for k in range(2):
                alone = model.encoder.embed(x[b, 2 + k][None])[0]
                assert torch.allclose(target[b, k], alone, atol=1e-5)
        # a predictor that outputs the true future is the oracle: ~100 % top-1 and the lowest loss
        loss, top1 = model.loss(target, target)
        assert top1.item() == 1.0
        assert loss.item() < model.loss(pred, target)[0].item()


def test_encoder_rejects_wrong_joint_count() -> None:
    enc = STGCNEncoder(2, "openhands27", STGCNConfig(channels=[4], temporal_kernel=3))
    with pytest.raises(ValueError, match="27"):
        enc(torch.zeros(1, 2, 5, 75))


def _pose_file(path: Path, lengths: list[int], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with PoseH5Writer(path) as w:
        for i, n in enumerate(lengths):
            w.add(f"v{i}", PoseSample(rng.random((n, 75, 3), dtype=np.float32), np.ones((n, 75), np.float32)))
    return path


def test_windows_read_one_slice_downsample_and_pad(tmp_path: Path) -> None:
    path = _pose_file(tmp_path / "p.h5", [100, 7, 30])
    cfg = DPCData(path=path, num_seq=3, seq_len=4, downsample=2, pred_step=1, short_videos="pad")
    pose = PoseH5(path)
    full = pose.keypoints("v0")
    assert np.array_equal(read_window(pose, "v0", 100, 10, cfg), full[10:34:2])
    short = pose.keypoints("v1")
    padded = read_window(pose, "v1", 7, 0, cfg)
    assert padded.shape == (12, 75, 3)
    # padded at the start with the first frame: the last (future) frames are the video's own
    assert np.array_equal(padded[-4:], short[::2]) and np.all(padded[:-4] == short[0])
    idx = index_videos(pose, cfg)
    assert idx.summary() == {"videos": 3, "used": 3, "padded": 1, "skipped_short": 0, "skipped_empty": 0}
    skip = index_videos(pose, cfg.model_copy(update={"short_videos": "skip"}))
    assert skip.keys == ["v0", "v2"] and skip.skipped_short == 1


def test_pose_windows_items(tmp_path: Path) -> None:
    path = _pose_file(tmp_path / "p.h5", [64, 50])
    cfg = DPCData(path=path, num_seq=4, seq_len=5, downsample=2, pred_step=2, windows_per_video=3,
                  transform=PoseTransformConfig(normalize=False), augment={"shear_std": 0, "rotation_std": 0})
    ds = PoseWindows(cfg)
    assert len(ds) == 6
    np.random.seed(3)
    item = ds[4]  # second video
    assert item.shape == (4, 2, 5, 27) and item.dtype == torch.float32
    # the window is some contiguous, downsampled 40-frame range of v1
    kp = PoseH5(path).keypoints("v1")[:, list(OPENHANDS27), :2]
    flat = item.permute(0, 2, 3, 1).reshape(20, 27, 2).numpy()
    starts = [s for s in range(0, 50 - 40 + 1) if np.array_equal(kp[s:s + 40:2], flat)]
    assert len(starts) == 1
    import pickle

    again = pickle.loads(pickle.dumps(ds))  # what a spawned worker receives: reopens lazily
    np.random.seed(3)
    assert torch.equal(again[4], item)


def test_bf16_autocast_keeps_the_recurrent_part_and_loss_in_fp32() -> None:
    model = _tiny_model()
    x = torch.randn(3, 4, 2, 5, 27)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred, target = model(x)
        loss, _ = model.loss(pred, target)
    assert pred.dtype == target.dtype == loss.dtype == torch.float32
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
