"""One training sample per clip of a v1/v2 feature dataset (Sign_LLaVA layouts).

All reads go through `sldata.features.FeatureDataset`, so shards are opened
lazily in each DataLoader worker and never shared across a fork. The index is
built once from annotation and HDF5 metadata (no array data): clips that cannot
be used are counted by reason in `skipped` (and refused when the config says
`error`), never dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from schemas.annotations import is_placeholder
from sldata.errors import UserError
from sldata.features import FeatureDataset

#: Reasons a clip is not a sample (keys of `FeatureClips.skipped`).
SKIP_MISSING_REP = "missing-rep"
SKIP_PLACEHOLDER = "placeholder-text"
SKIP_OVERLONG = "overlong-target"


@dataclass(frozen=True)
class ClipRef:
    """Where a sample comes from and its texts; features are read on demand."""

    video: str
    clip: str
    target: str
    context: tuple[str, ...] = ()
    frames: tuple[int, ...] = ()  # T per selected rep, from HDF5 metadata


@dataclass
class ClipIndex:
    """The usable clips of a split plus what was left out and why."""

    items: list[ClipRef] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few "video/clip (rep)"
    dims: dict[str, int] = field(default_factory=dict)  # feature size D per rep

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(where)


def _text(value: Any) -> str:
    """A kept placeholder as a string: NaN/None become the empty string."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def context_of(history: list[str], context_clips: int, context_prelude: int = 0) -> tuple[str, ...]:
    """The context sentences of a clip preceded by `history` (oldest first).

    Upstream Sign_LLaVA's rule (`context_window_size`, `prelude_window_size`): the first
    `context_prelude` sentences of the video plus the `context_clips` previous ones, or
    every previous sentence while there are fewer than the two windows together.
    """
    if len(history) < context_clips + context_prelude:
        return tuple(history)
    recent = history[len(history) - context_clips:] if context_clips else []
    return tuple(history[:context_prelude] + recent)


def build_index(root: str | Path, split: str, reps: list[str], context_clips: int = 0,
                missing_rep: Literal["skip", "error"] = "skip",
                placeholder_text: Literal["skip", "keep", "error"] = "skip",
                dataset: FeatureDataset | None = None, context_prelude: int = 0) -> ClipIndex:
    """List the clips of `split` that become samples, in video then temporal clip order.

    Context holds the translations of up to `context_clips` preceding clips of the same
    video, plus the video's first `context_prelude` ones (`context_of`), oldest first;
    placeholder texts never appear in a context. A clip skipped as a sample still gives
    its translation as context to the next clips.
    """
    ds = dataset or FeatureDataset(root)
    absent = [r for r in reps if r not in ds.reps]
    if absent:
        raise UserError(f"{ds.root}: rep(s) {', '.join(absent)} not in the dataset (have: {', '.join(ds.reps) or 'none'})")
    view = ds.split(split)
    index = ClipIndex()
    for video in view.videos:
        entry = view.annotation[video]
        if not isinstance(entry, dict):
            raise UserError(f"{ds.root}: annotation.{split}.json: video {video!r} is not an object")
        shapes: dict[str, dict[str, tuple[int, ...]]] = {}
        for rep in reps:
            try:
                group = view.group(video, rep)
                shapes[rep] = {name: ds_.shape for name, ds_ in group.items()}
            except (KeyError, FileNotFoundError, OSError):
                shapes[rep] = {}
        history: list[str] = []
        for clip in view.clips(video):
            info = entry.get(clip)
            text = info.get("translation") if isinstance(info, dict) else None
            where = f"{video}/{clip}"
            context = context_of(history, context_clips, context_prelude)
            if not is_placeholder(text):
                history.append(str(text))
            missing = [r for r in reps if clip not in shapes[r]]
            if missing:
                if missing_rep == "error":
                    raise UserError(f"{ds.root}: split {split!r}: clip {where} is missing from rep(s) "
                                    f"{', '.join(missing)} (set data.missing_rep: skip to train without it)")
                index.skip(SKIP_MISSING_REP, f"{where} ({', '.join(missing)})")
                continue
            if is_placeholder(text):
                if placeholder_text == "error":
                    raise UserError(f"{ds.root}: split {split!r}: clip {where} has a placeholder translation "
                                    f"{text!r} (set data.placeholder_text: skip or keep)")
                if placeholder_text == "skip":
                    index.skip(SKIP_PLACEHOLDER, where)
                    continue
            frames = tuple(int(shapes[r][clip][0]) if len(shapes[r][clip]) == 2 else -1 for r in reps)
            bad = [r for r, t in zip(reps, frames) if t < 1]
            if bad:
                raise UserError(f"{ds.root}: clip {where} of rep(s) {', '.join(bad)} is not a (T>=1, D) array "
                                "(run `sldata validate` on the dataset)")
            for r in reps:
                d = int(shapes[r][clip][1])
                if index.dims.setdefault(r, d) != d:
                    raise UserError(f"{ds.root}: clip {where} of rep {r} has D={d}, other clips D={index.dims[r]} "
                                    "(run `sldata validate` on the dataset)")
            index.items.append(ClipRef(video, clip, _text(text), context, frames))
    return index


class FeatureClips(Dataset):
    """Map-style dataset: item i is {video, clip, target, context, features: {rep: (T, D) float32}}."""

    def __init__(self, root: str | Path, split: str, reps: list[str], context_clips: int = 0,
                 missing_rep: Literal["skip", "error"] = "skip",
                 placeholder_text: Literal["skip", "keep", "error"] = "skip",
                 limit: int | None = None, context_prelude: int = 0):
        self.root, self.split, self.reps = Path(root), split, list(reps)
        self.dataset = FeatureDataset(self.root)
        index = build_index(self.root, split, self.reps, context_clips, missing_rep, placeholder_text,
                            dataset=self.dataset, context_prelude=context_prelude)
        self.items = index.items[:limit] if limit else index.items
        self.skipped: Counter = index.skipped
        self.examples = index.examples
        self.dims = index.dims
        # The parent only read metadata: drop its handles so workers open their own.
        self.dataset.close()

    def __len__(self) -> int:
        return len(self.items)

    def drop(self, predicate: Callable[[ClipRef], bool], reason: str) -> int:
        """Remove items matching `predicate`, counting them under `reason`."""
        kept, n = [], 0
        for ref in self.items:
            if predicate(ref):
                n += 1
                self.skipped[reason] += 1
                ex = self.examples.setdefault(reason, [])
                if len(ex) < 5:
                    ex.append(f"{ref.video}/{ref.clip}")
            else:
                kept.append(ref)
        self.items = kept
        return n

    def texts(self) -> list[str]:
        """Every target and context text (for training a tokenizer on the data)."""
        return [t for ref in self.items for t in (ref.target, *ref.context)]

    def skip_counts(self) -> dict[str, int]:
        return {f"skipped/{k}": int(v) for k, v in sorted(self.skipped.items())}

    def __getitem__(self, i: int) -> dict[str, Any]:
        ref = self.items[i]
        view = self.dataset.split(self.split)
        feats = {}
        for rep in self.reps:
            arr = view.features(ref.video, ref.clip, rep)
            feats[rep] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        return {"video": ref.video, "clip": ref.clip, "target": ref.target,
                "context": list(ref.context), "features": feats}


__all__ = ["ClipRef", "ClipIndex", "FeatureClips", "build_index", "context_of",
           "SKIP_MISSING_REP", "SKIP_PLACEHOLDER", "SKIP_OVERLONG"]
