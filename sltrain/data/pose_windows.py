"""DPC training windows from a pose h5: one contiguous read per sample, lazily per worker.

A window spans `num_seq * seq_len * downsample` source frames. Each item picks a
random start inside one video, reads that frame range with a single slice of the
keypoints dataset (h5 chunks of 64 frames: a few chunks per window), keeps
every `downsample`-th frame, transforms it, and returns `(num_seq, C, seq_len, V)`.

Augmentation (shear, rotation) is drawn per block by default (`data.augment`): a
transform shared by every block of a window is a fingerprint of that window, and
with it the contrastive task can be solved by recognising the video instead of
predicting its motion. A video shorter than a window is skipped by default; with
`short_videos: pad` its first frame is repeated *before* it, so the future blocks
are always real frames of the video (padding at the end would make a static
future identical to the last context frame: a free positive that teaches nothing).

The file is opened through `sldata.pose.PoseH5`, whose handle is per process:
forked or spawned DataLoader workers each open their own on first use. Only the
video list (keys and frame counts, metadata only) is built up front.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from schemas.config_dpc import DPCData
from sldata.errors import UserError
from sldata.pose import PoseH5

from .transforms import NUM_JOINTS, SHOULDERS, apply_block_affines, center_and_scale, draw_block_affines, to_ctv


@dataclass
class WindowIndex:
    """Which videos give windows, and how many were padded or left out (for the log)."""

    keys: list[str] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    videos: int = 0
    padded: int = 0
    skipped_short: int = 0
    skipped_empty: int = 0

    def summary(self) -> dict[str, int]:
        return {"videos": self.videos, "used": len(self.keys), "padded": self.padded,
                "skipped_short": self.skipped_short, "skipped_empty": self.skipped_empty}


def index_videos(pose: PoseH5, cfg: DPCData) -> WindowIndex:
    """Decide per video (from shapes only) whether it gives windows, padded or not.

    A padded video must still fill every future block with its own frames, so
    videos whose downsampled length is under `pred_step * seq_len` are skipped
    even with `short_videos: pad`.
    """
    need = cfg.window_frames
    future = cfg.pred_step * cfg.seq_len
    idx = WindowIndex()
    for key in pose.keys():
        n = pose.num_frames(key)
        idx.videos += 1
        if n < max(1, cfg.min_frames):
            idx.skipped_empty += 1
            continue
        if n < need:
            kept = -(-n // cfg.downsample)
            if cfg.short_videos == "skip" or kept < future:
                idx.skipped_short += 1
                continue
            idx.padded += 1
        idx.keys.append(key)
        idx.frames.append(n)
    return idx


def read_window(pose: PoseH5, key: str, n_frames: int, start: int, cfg: DPCData) -> np.ndarray:
    """(num_seq * seq_len, N, 3) downsampled frames from `start`, read as one slice.

    A video shorter than the window is read whole and padded at the start by
    repeating its first kept frame, so every window has the same shape and the
    padding falls in the context, never in the future blocks (`index_videos`
    keeps only videos long enough to fill those).
    """
    need = cfg.window_frames
    stop = min(n_frames, start + need)
    kp = pose.keypoints(key, start, stop)[:: cfg.downsample]
    want = cfg.num_seq * cfg.seq_len
    if len(kp) < want:
        kp = np.concatenate([np.repeat(kp[:1], want - len(kp), axis=0), kp], axis=0)
    return kp[:want]


class BlockTransform:
    """openhands75 (S*L, 75, 3) window → float32 (S, C, L, V) blocks: joints, normalisation, augmentation.

    Normalisation (shoulder centre and scale, `data.transform.normalize`) is done
    once per window or per block (`augment.normalize`); shear and rotation are
    drawn per block or per window (`augment.per`), only when `train`.
    """

    def __init__(self, cfg: DPCData, train: bool = True):
        self.cfg = cfg
        self.train = train

    @property
    def num_joints(self) -> int:
        return NUM_JOINTS[self.cfg.transform.joints]

    @property
    def in_channels(self) -> int:
        return self.cfg.transform.coords

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        t, a = self.cfg.transform, self.cfg.augment
        s, ln = self.cfg.num_seq, self.cfg.seq_len
        x = to_ctv(keypoints, t.joints, t.coords)  # (C, S*L, V)
        shoulders = SHOULDERS[t.joints]
        if t.normalize and a.normalize == "window":
            x = center_and_scale(x, shoulders, t.frame_level)
        c, _, v = x.shape
        x = x.reshape(c, s, ln, v)
        if t.normalize and a.normalize == "block":
            x = np.stack([center_and_scale(x[:, i], shoulders, t.frame_level) for i in range(s)], axis=1)
        if self.train and (a.shear_std > 0 or a.rotation_std > 0):
            x = apply_block_affines(x, draw_block_affines(s, a.shear_std, a.rotation_std, a.per))
        return np.ascontiguousarray(x.transpose(1, 0, 2, 3), dtype=np.float32)


def openhands75_indices(pose: PoseH5, path: Path) -> np.ndarray | None:
    """None for openhands75 files; for holistic543 the indices of its body and hands."""
    if len(pose) == 0:
        raise UserError(f"{path}: the pose file holds no videos")
    ks = pose.keypoint_set
    if ks is not None and ks.name == "openhands75":
        return None
    if ks is not None and ks.name == "holistic543":
        return np.r_[slice(*ks.parts["pose"]), slice(*ks.parts["left_hand"]), slice(*ks.parts["right_hand"])]
    raise UserError(f"{path}: unknown keypoint layout; pose training needs openhands75 or holistic543")


class PoseWindows(Dataset):
    """`windows_per_video` random DPC windows per usable video and epoch."""

    def __init__(self, cfg: DPCData, train: bool = True):
        self.cfg = cfg
        self.pose = PoseH5(cfg.path)
        self.to75 = openhands75_indices(self.pose, cfg.path)
        self.index = index_videos(self.pose, cfg)
        if not self.index.keys:
            raise UserError(f"{cfg.path}: no video gives a DPC window ({self.index.summary()}); "
                            f"a window spans {cfg.window_frames} frames — lower data.num_seq/seq_len/downsample "
                            "or set data.short_videos=pad")
        self.transform = BlockTransform(cfg, train=train)
        self.pose.close()  # reopened lazily in whichever process reads

    @property
    def in_channels(self) -> int:
        return self.transform.in_channels

    @property
    def num_joints(self) -> int:
        return self.transform.num_joints

    def __len__(self) -> int:
        return len(self.index.keys) * self.cfg.windows_per_video

    def __getitem__(self, i: int) -> torch.Tensor:
        v = i // self.cfg.windows_per_video
        key, n = self.index.keys[v], self.index.frames[v]
        slack = n - self.cfg.window_frames
        start = int(np.random.randint(0, slack + 1)) if slack > 0 else 0
        kp = read_window(self.pose, key, n, start, self.cfg)
        if self.to75 is not None:
            kp = kp[:, self.to75]
        return torch.from_numpy(self.transform(kp))  # (S, C, L, V)
