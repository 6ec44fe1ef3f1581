"""The embedded demo feature datasets (Sign_LLaVA layouts), deterministic from a seed.

Shapes follow the real mock data: per-rep D, T varying per clip, sign2vec at
about half the frames, float16; videos have >= 12 clips by default so that
numeric clip order (`"10"` after `"9"`) matters.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .features import NAME, RepWriter, is_feature_dataset_dir, to_v2_annotation, write_annotation
from .io import atomic_path
from .progress import NullProgress, Progress

MOCK_DIMS = {"dino": 384, "mae": 768, "pose": 32, "sign2vec": 768}
REAL_DIMS = {"dino": 1152, "mae": 768, "pose": 208, "sign2vec": 768}
DEFAULT_DIM = 256  # for any other rep name

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SUBJECTS = ["I", "you", "my friend", "the teacher", "we", "they", "my sister", "the doctor", "our team"]
_VERBS = ["want to learn", "like", "need", "finished", "will visit", "saw", "forgot", "understand"]
_OBJECTS = ["sign language", "the lesson", "a new book", "the store", "my family", "the movie",
            "the weather", "dinner", "the bus schedule", "coffee"]
_TAILS = ["today", "yesterday", "tomorrow", "every week", "again", "last year", "right now", ""]
_KEYWORD_DRAWS = 10  # keywords are drawn as integers in [0, 10): the random stream of older mocks
_FUNCTION_WORDS = {"the", "our", "you", "they", "will", "every"}


def _keywords(rng: np.random.Generator, translation: str) -> list[str]:
    """Two draws of lower-case words of `translation` (Sign_LLaVA's loader tests `keyword in translation`)."""
    words = [w for w in re.findall(r"[a-z]+", translation.lower()) if len(w) > 2 and w not in _FUNCTION_WORDS]
    words = words or re.findall(r"[a-z]+", translation.lower())
    return sorted({words[int(i) % len(words)] for i in rng.integers(0, _KEYWORD_DRAWS, 2)})


def _video_id(rng: np.random.Generator) -> str:
    return "".join(_ALPHABET[i] for i in rng.integers(0, len(_ALPHABET), 11))


def _sentence(rng: np.random.Generator) -> str:
    parts = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_TAILS)]
    s = " ".join(p for p in parts if p)
    return s[0].upper() + s[1:] + "."


def mock_annotation(rng: np.random.Generator, videos: int, clips: int) -> dict[str, Any]:
    ann: dict[str, Any] = {}
    while len(ann) < videos:
        vid = _video_id(rng)
        if vid in ann:
            continue
        entry = {}
        for c in range(clips):
            start = round(float(c * 4.0 + rng.uniform(0, 1)), 2)
            translation = _sentence(rng)
            paraphrases = [_sentence(rng) for _ in range(int(rng.integers(1, 3)))]
            entry[str(c)] = {
                "translation": translation,
                "paraphrases": paraphrases,
                "keywords": _keywords(rng, translation),
                "start": start,
                "end": round(start + float(rng.uniform(1.5, 4.0)), 2),
            }
        ann[vid] = entry
    return ann


def write_mock(out: str | Path, layout: str = "v1", videos: int = 6, clips: int = 12,
               splits: list[str] | None = None, reps: list[str] | None = None, seed: int = 0,
               shard_size: int = 2, dims: dict[str, int] | None = None, min_frames: int = 8,
               max_frames: int = 48, overwrite: bool = False,
               progress: Progress | None = None) -> dict[str, Any]:
    """Write a mock dataset at `out` atomically; returns a summary dict."""
    out = Path(out)
    splits = splits or ["train", "dev"]
    reps = reps or list(MOCK_DIMS)
    dims = {**MOCK_DIMS, **(dims or {})}
    if layout not in ("v1", "v2"):
        raise UserError(f"--layout must be v1 or v2, not {layout!r}")
    if videos < 1 or clips < 1 or shard_size < 1 or min_frames < 2 or max_frames < min_frames:
        raise UserError("--videos, --clips and --shard-size must be >= 1 (and frames >= 2)")
    for option, names in (("--splits", splits), ("--reps", reps)):
        bad = [n for n in names if not re.fullmatch(NAME, n)]
        if bad:
            raise UserError(f"{option}: names must match {NAME}, not {', '.join(map(repr, bad))}")
        if len(set(names)) != len(names):
            raise UserError(f"{option}: a name is repeated ({','.join(names)})")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} exists and is not empty (use --overwrite to replace it)")
    progress = progress or NullProgress()
    progress.start(f"mock {layout}", total=len(splits) * videos * len(reps), unit="videos")
    rng = np.random.default_rng(seed)
    summary: dict[str, Any] = {"path": str(out), "layout": layout, "splits": {}, "reps": reps}
    with atomic_path(out, kind="dir", overwrite=overwrite, owned=is_feature_dataset_dir) as tmp:
        tmp.mkdir()
        for split in splits:
            ann = mock_annotation(rng, videos, clips)
            frames = {v: {c: int(rng.integers(min_frames, max_frames + 1)) for c in e} for v, e in ann.items()}
            for rep in reps:
                w = RepWriter(tmp, rep, split, layout, shard_size=shard_size if layout == "v2" else None)
                d = dims.get(rep, DEFAULT_DIM)
                for vid in ann:
                    arrays = {}
                    for c, t in frames[vid].items():
                        t = max(1, t // 2) if rep == "sign2vec" else t
                        arrays[c] = rng.standard_normal((t, d), dtype=np.float32).astype(np.float16)
                    w.add_video(vid, arrays)
                    progress.advance(1)
                w.close()
            write_annotation(tmp, split, to_v2_annotation(ann) if layout == "v2" else ann)
            summary["splits"][split] = {"videos": videos, "clips": videos * clips}
    progress.finish()
    return summary
