"""Pose window transforms shared by DPC and ISLR: joint selection, normalisation, augmentation.

Input is openhands75 `(T, 75, 3)` as stored; `to_ctv` selects joints and
coordinates into the `(C, T, V)` layout of the ST-GCN encoder, and the other
transforms work on that layout. A missing keypoint is all
zeros (SPEC §3) and stays all zeros through every transform, so the model can
tell "not detected" apart from "at the shoulders' midpoint".
"""

from __future__ import annotations

import math

import numpy as np

from schemas.config import PoseTransformConfig

#: OpenHands' `mediapipe_holistic_minimal_27` preset, as indices into openhands75
#: (pose 0-32, left hand 33-53, right hand 54-74): nose, eyes, shoulders, elbows,
#: then per hand the wrist, thumb tip, and base + tip of the four fingers.
OPENHANDS27: tuple[int, ...] = (0, 2, 5, 11, 12, 13, 14,
                                33, 37, 38, 41, 42, 45, 46, 49, 50, 53,
                                54, 58, 59, 62, 63, 66, 67, 70, 71, 74)

#: (left, right) shoulder positions in each joint layout (OpenHands' reference points).
SHOULDERS: dict[str, tuple[int, int]] = {"openhands27": (3, 4), "openhands75": (11, 12)}
NUM_JOINTS: dict[str, int] = {"openhands27": 27, "openhands75": 75}


def select_joints(keypoints: np.ndarray, joints: str) -> np.ndarray:
    """(T, 75, C) openhands75 → (T, V, C) of the chosen layout."""
    if keypoints.shape[1] != 75:
        raise ValueError(f"expected 75 openhands keypoints per frame, got {keypoints.shape[1]}")
    if joints == "openhands75":
        return keypoints
    return keypoints[:, OPENHANDS27, :]


def to_ctv(keypoints: np.ndarray, joints: str = "openhands75", coords: int = 3) -> np.ndarray:
    """(T, 75, 3) → contiguous float32 (coords, T, V) of the chosen joints, in one copy."""
    if keypoints.shape[1] != 75:
        raise ValueError(f"expected 75 openhands keypoints per frame, got {keypoints.shape[1]}")
    x = np.asarray(keypoints, dtype=np.float32).transpose(2, 0, 1)[:coords]
    x = x[..., list(OPENHANDS27)] if joints == "openhands27" else x
    return np.ascontiguousarray(x)


def present(x: np.ndarray) -> np.ndarray:
    """(T, V) mask of detected keypoints (not all-zero) of a (C, T, V) array."""
    mask = x[0] != 0
    for c in range(1, x.shape[0]):
        mask |= x[c] != 0
    return mask


# The transforms below work on channels-first (C, T, V) arrays: every operation then
# runs over contiguous (T, V) planes. With channels last, numpy's inner loops run
# over an axis of length 2 or 3 and a window costs ~10x more (docs/benchmarks.md).

def center_and_scale(x: np.ndarray, shoulders: tuple[int, int], frame_level: bool = False) -> np.ndarray:
    """Centre on the shoulders' midpoint and divide by the shoulder width (x, y); (C, T, V).

    Clip level by default (one centre and scale from every frame where both
    shoulders are detected, as OpenHands does); per frame with `frame_level`.
    Frames or windows without both shoulders are left as they are; missing
    keypoints stay zero.
    """
    mask = present(x)
    left, right = x[:, :, shoulders[0]], x[:, :, shoulders[1]]  # (C, T)
    width = np.hypot(left[0] - right[0], left[1] - right[1])
    ok = mask[:, shoulders[0]] & mask[:, shoulders[1]] & (width > 1e-6)
    if frame_level:
        centre = ((left + right) * (0.5 * ok))[:, :, None]
        inv = np.divide(1.0, width, out=np.ones_like(width), where=ok)[None, :, None]
    else:
        n = int(ok.sum())
        if n == 0:
            return np.array(x, dtype=np.float32, copy=True)
        centre = ((left[:, ok].sum(axis=1) + right[:, ok].sum(axis=1)) * (0.5 / n))[:, None, None]
        inv = np.float32(n / width[ok].sum())
    out = (x - centre) * inv
    out *= mask
    return out.astype(np.float32, copy=False)


def shear_rotate(x: np.ndarray, shear: float, rotation_deg: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Random 2-D shear then rotation of (x, y), the same for the whole (C, T, V) window.

    Shear factors and angle are uniform in [-shear, shear] and
    [-rotation_deg, rotation_deg]. Draws from numpy's global RNG unless `rng` is
    given (the training loop seeds it per sample, so results are reproducible).
    """
    draw = rng.uniform if rng is not None else np.random.uniform
    sx = sy = 0.0
    if shear > 0:
        sx, sy = float(draw(-shear, shear)), float(draw(-shear, shear))
    a = math.radians(float(draw(-rotation_deg, rotation_deg))) if rotation_deg > 0 else 0.0
    c, s = math.cos(a), math.sin(a)
    # rotation @ shear, with shear = [[1, sx], [sy, 1]]
    m00, m01, m10, m11 = c - s * sy, c * sx - s, s + c * sy, s * sx + c
    mask = present(x)
    out = x.copy()
    out[0] = m00 * x[0] + m01 * x[1]
    out[1] = m10 * x[0] + m11 * x[1]
    out *= mask
    return out


def affine_2d(shear: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(n, 2, 2) matrices rotation(angle) @ [[1, shear], [0, 1]] (OpenHands: shear on one axis)."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.empty((len(angle), 2, 2), dtype=np.float64)
    m[:, 0, 0], m[:, 0, 1] = c, c * shear - s
    m[:, 1, 0], m[:, 1, 1] = s, s * shear + c
    return m


def draw_block_affines(blocks: int, shear_std: float, rotation_std: float, per: str = "block",
                       rng: np.random.Generator | None = None) -> np.ndarray:
    """(blocks, 2, 2) shear-then-rotation matrices, normal as OpenHands draws them.

    `per="block"` draws independent matrices for every block; `per="window"` one
    matrix repeated for all blocks. Uses numpy's global RNG unless `rng` is given
    (the training loop seeds it per sample).
    """
    n = blocks if per == "block" else 1
    normal = rng.normal if rng is not None else np.random.normal
    shear = normal(0.0, shear_std, n) if shear_std > 0 else np.zeros(n)
    angle = normal(0.0, rotation_std, n) if rotation_std > 0 else np.zeros(n)
    m = affine_2d(np.asarray(shear, np.float64), np.asarray(angle, np.float64))
    return m if per == "block" else np.repeat(m, blocks, axis=0)


def apply_block_affines(x: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Apply matrix `mats[s]` to the (x, y) of block s of a (C, S, L, V) array; missing joints stay zero."""
    mask = present(x.reshape(x.shape[0], -1, x.shape[-1])).reshape(x.shape[1:])
    m = mats.astype(np.float32)[:, :, :, None, None]  # (S, 2, 2, 1, 1)
    out = x.copy()
    out[0] = m[:, 0, 0] * x[0] + m[:, 0, 1] * x[1]
    out[1] = m[:, 1, 0] * x[0] + m[:, 1, 1] * x[1]
    out *= mask
    return out


class PoseTransform:
    """The configured pipeline: openhands75 (T, 75, 3) → float32 (C, T, V) for the encoder.

    `train=False` turns augmentation off (evaluation).
    """

    def __init__(self, cfg: PoseTransformConfig, train: bool = True):
        self.cfg = cfg
        self.train = train

    @property
    def num_joints(self) -> int:
        return NUM_JOINTS[self.cfg.joints]

    @property
    def in_channels(self) -> int:
        return self.cfg.coords

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        x = to_ctv(keypoints, self.cfg.joints, self.cfg.coords)
        if self.cfg.normalize:
            x = center_and_scale(x, SHOULDERS[self.cfg.joints], self.cfg.frame_level)
        if self.train and (self.cfg.shear > 0 or self.cfg.rotation_deg > 0):
            x = shear_rotate(x, self.cfg.shear, self.cfg.rotation_deg)
        return x
