"""Synthetic signs: pose videos whose class is a right-hand motion, for tests, demos and benches.

Real ISLR data cannot ship with the project, and random noise cannot tell a trainer
that learns from one that does not. Here each class is a path the right wrist traces
in front of the chest (circle, line, zigzag, square, ...), performed by a few
"signers" (position, size, tilt), at random speed and amplitude, with tracking noise
and dropped left hands. Only the motion separates classes, so a model must use time.

Like a real corpus, the unlabeled set has many videos per signer (a pool of
`signers` people), and the labeled set keeps its splits' signers apart: dev and
test are signed by people never seen in train.

Files are the real formats: a pose h5 through `sldata.pose.PoseH5Writer` (openhands75)
and `labels.SPLIT.csv` files (SPEC §3.1), all written atomically.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .io import write_bytes_atomic
from .pose import PoseH5Writer, PoseSample

#: Right-hand motions, in class order. The first K are used for K classes.
SHAPES: tuple[str, ...] = ("circle", "line", "zigzag", "square", "vline", "triangle", "eight", "spiral")

# A resting upper body in normalised image coordinates (MediaPipe pose landmark order).
_BODY = np.array([
    [0.50, 0.25], [0.51, 0.23], [0.52, 0.23], [0.53, 0.23], [0.49, 0.23], [0.48, 0.23], [0.47, 0.23],
    [0.55, 0.24], [0.45, 0.24], [0.52, 0.28], [0.48, 0.28],            # 0-10 face
    [0.62, 0.42], [0.38, 0.42],                                         # 11, 12 shoulders
    [0.66, 0.58], [0.34, 0.58], [0.64, 0.72], [0.36, 0.72],             # 13-16 elbows, wrists
    [0.65, 0.75], [0.35, 0.75], [0.64, 0.76], [0.36, 0.76], [0.63, 0.74], [0.37, 0.74],  # 17-22
    [0.58, 0.80], [0.42, 0.80], [0.58, 1.00], [0.42, 1.00], [0.58, 1.20], [0.42, 1.20],  # 23-28
    [0.58, 1.24], [0.42, 1.24], [0.59, 1.26], [0.41, 1.26],             # 29-32 feet
], dtype=np.float32)

# A relaxed open hand relative to its wrist (21 MediaPipe hand landmarks), fingers up.
_HAND = np.concatenate([
    np.zeros((1, 2)),
    *[np.stack([np.full(4, dx), -np.linspace(0.02, 0.065, 4) - (0.01 if f else 0)], axis=1)
      for f, dx in enumerate((-0.03, -0.015, 0.0, 0.012, 0.024))],
]).astype(np.float32)


def _path(shape: str, t: np.ndarray) -> np.ndarray:
    """The unit-sized 2-D path of one motion at phases t in [0, 1]."""
    two_pi = 2 * np.pi * t
    if shape == "circle":
        p = np.stack([np.cos(two_pi), np.sin(two_pi)], 1)
    elif shape == "line":
        p = np.stack([2 * t - 1, np.zeros_like(t)], 1)
    elif shape == "vline":
        p = np.stack([np.zeros_like(t), 2 * t - 1], 1)
    elif shape == "zigzag":
        tri = 2 * np.abs((3 * t) % 1.0 - 0.5)  # three teeth
        p = np.stack([2 * t - 1, 1 - 2 * tri], 1)
    elif shape in ("square", "triangle"):
        corners = (np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], np.float32) if shape == "square"
                   else np.array([[0, -1], [1, 0.8], [-1, 0.8], [0, -1]], np.float32))
        seg = t * (len(corners) - 1)
        i = np.minimum(seg.astype(int), len(corners) - 2)
        f = (seg - i)[:, None]
        p = corners[i] * (1 - f) + corners[i + 1] * f
    elif shape == "eight":
        p = np.stack([np.sin(two_pi), np.sin(2 * two_pi) / 2], 1)
    elif shape == "spiral":
        r = 0.2 + 0.8 * t
        p = np.stack([r * np.cos(2 * two_pi), r * np.sin(2 * two_pi)], 1)
    else:
        raise UserError(f"unknown synthetic motion {shape!r} (choose from: {', '.join(SHAPES)})")
    return p.astype(np.float32)


@dataclass(frozen=True)
class Signer:
    """Where and how big a signer appears in the frame."""

    offset: tuple[float, float]
    scale: float
    tilt: float  # radians

    @staticmethod
    def random(rng: np.random.Generator) -> "Signer":
        return Signer((float(rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.05, 0.05))),
                      float(rng.uniform(0.8, 1.2)), float(rng.uniform(-0.1, 0.1)))

    def place(self, xy: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        rot = np.array([[c, -s], [s, c]], np.float32)
        centre = np.array([0.5, 0.5], np.float32)
        return ((xy - centre) @ rot.T) * self.scale + centre + np.array(self.offset, np.float32)


def motion_video(shapes: list[str], rng: np.random.Generator, signer: Signer | None = None,
                 frames: tuple[int, int] = (24, 64), noise: float = 0.004) -> PoseSample:
    """One openhands75 video of the right hand tracing `shapes` one after another.

    Each stroke lasts a random number of frames in `frames` (random speed), with a
    random time warp, amplitude and start hold; the left hand is dropped (zeros,
    confidence 0) in half of the videos, as MediaPipe often misses a resting hand.
    """
    signer = signer or Signer.random(rng)
    hold = int(rng.integers(0, 6))
    traj: list[np.ndarray] = []
    centre = np.array([0.42, 0.58], np.float32) + rng.normal(0, 0.01, 2).astype(np.float32)
    for shape in shapes:
        n = int(rng.integers(frames[0], frames[1] + 1))
        t = np.linspace(0, 1, n, dtype=np.float32) ** np.float32(rng.uniform(0.75, 1.33))
        amp = np.float32(rng.uniform(0.07, 0.11))
        traj.append(centre + amp * _path(shape, t) * np.array([1.0, rng.uniform(0.85, 1.15)], np.float32))
        traj.append(np.repeat(traj[-1][-1:], int(rng.integers(0, 4)), 0))
    wrist = np.concatenate([np.repeat(traj[0][:1], hold, 0), *traj]).astype(np.float32)
    f = len(wrist)

    kp = np.zeros((f, 75, 3), np.float32)
    conf = np.zeros((f, 75), np.float32)
    body = np.repeat(_BODY[None], f, 0).copy()
    shoulder = body[:, 12]
    body[:, 16] = wrist
    body[:, 14] = shoulder + 0.5 * (wrist - shoulder) + np.array([-0.04, 0.06], np.float32)
    for j, d in ((18, (0.01, 0.03)), (20, (0.0, -0.05)), (22, (-0.02, -0.02))):
        body[:, j] = wrist + np.array(d, np.float32)
    kp[:, :33, :2] = body
    conf[:, :33] = 0.99
    conf[:, 25:33] = 0.1  # legs out of frame
    kp[:, 54:75, :2] = wrist[:, None] + _HAND[None] * np.float32(rng.uniform(0.9, 1.1))
    conf[:, 54:75] = 1.0
    if rng.random() < 0.5:
        kp[:, 33:54, :2] = body[:, 15][:, None] + _HAND[None] * np.array([-1, 1], np.float32)
        conf[:, 33:54] = 1.0
    kp[..., :2] = signer.place(kp[..., :2].reshape(-1, 2)).reshape(f, 75, 2)
    kp[..., 2] = rng.normal(0, 0.02, (f, 75)).astype(np.float32)
    kp[..., :2] += rng.normal(0, noise, (f, 75, 2)).astype(np.float32)
    kp[conf == 0] = 0.0  # a missing part is all zeros (SPEC §3)
    return PoseSample(kp, conf, fps=25.0, width=640, height=480)


@dataclass
class SyntheticSet:
    """What `write_labeled` produced."""

    root: Path
    pose: Path
    labels: dict[str, Path]
    classes: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def _labels_csv(rows: list[tuple[str, str, str]]) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["key", "label", "signer"])
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def split_signers(splits: list[str], signers: int) -> dict[str, list[int]]:
    """Disjoint signer ids per split: the first split (train) gets half, the others share the rest in turn."""
    if signers < len(splits):
        raise UserError(f"{len(splits)} splits need at least {len(splits)} signers to keep them apart, got {signers}")
    first = max(1, signers - max(len(splits) - 1, signers // 2)) if len(splits) > 1 else signers
    out: dict[str, list[int]] = {s: [] for s in splits}
    out[splits[0]] = list(range(first))
    for i, who in enumerate(range(first, signers)):
        out[splits[1 + i % (len(splits) - 1)]].append(who)
    return out


def write_labeled(root: str | Path, classes: int = 4, per_class: dict[str, int] | None = None,
                  seed: int = 0, signers: int = 8, frames: tuple[int, int] = (24, 64)) -> SyntheticSet:
    """A labeled ISLR set: `root/poses.h5` plus `root/labels.SPLIT.csv` per split.

    `per_class` is videos per class and split (default train 20, dev 5, test 5).
    Splits never share a signer (`split_signers`: train half of them, dev and
    test the rest), as in a signer-independent benchmark.
    Same arguments, same bytes of arrays; keys are shuffled so file order tells nothing.
    """
    if not 2 <= classes <= len(SHAPES):
        raise UserError(f"classes must be between 2 and {len(SHAPES)}, got {classes}")
    per_class = per_class or {"train": 20, "dev": 5, "test": 5}
    rng = np.random.default_rng(seed)
    people = [Signer.random(rng) for _ in range(max(1, signers))]
    by_split = split_signers(list(per_class), len(people))
    names = list(SHAPES[:classes])
    root = Path(root)
    rows: dict[str, list[tuple[str, str, str]]] = {s: [] for s in per_class}
    with PoseH5Writer(root / "poses.h5", root_attrs={"synthetic": f"sldata.synthetic_pose seed={seed}"}) as w:
        for split, n in per_class.items():
            jobs = [(c, i) for c in names for i in range(n)]
            order = rng.permutation(len(jobs))
            for k, j in enumerate(order):
                cls, _ = jobs[j]
                who = by_split[split][int(rng.integers(len(by_split[split])))]
                key = f"{split}-{k:04d}"
                w.add(key, motion_video([cls], rng, people[who], frames), source=f"synthetic/{cls}")
                rows[split].append((key, cls, f"s{who}"))
    paths = {}
    for split, r in rows.items():
        paths[split] = root / f"labels.{split}.csv"
        write_bytes_atomic(paths[split], _labels_csv(r))
    return SyntheticSet(root, root / "poses.h5", paths, names, {s: len(r) for s, r in rows.items()})


def write_unlabeled(path: str | Path, videos: int = 64, seed: int = 0, strokes: tuple[int, int] = (3, 6),
                    classes: int = len(SHAPES), frames: tuple[int, int] = (24, 64), signers: int = 16) -> Path:
    """Unlabeled pose for DPC pretraining: longer videos chaining random motions.

    Videos are signed by a pool of `signers` people (each video picks one), so a
    corpus of more videos than signers has many videos per signer, as real ones do.
    """
    rng = np.random.default_rng(seed)
    people = [Signer.random(rng) for _ in range(max(1, signers))]
    with PoseH5Writer(path, root_attrs={"synthetic": f"sldata.synthetic_pose unlabeled seed={seed}"}) as w:
        for i in range(videos):
            k = int(rng.integers(strokes[0], strokes[1] + 1))
            shapes = [SHAPES[int(c)] for c in rng.integers(0, classes, k)]
            who = int(rng.integers(len(people)))
            w.add(f"u{i:05d}", motion_video(shapes, rng, people[who], frames), source=f"synthetic/unlabeled/s{who}")
    return Path(path)


__all__ = ["SHAPES", "Signer", "motion_video", "split_signers", "write_labeled", "write_unlabeled", "SyntheticSet"]
