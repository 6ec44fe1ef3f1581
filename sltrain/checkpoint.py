"""Atomic checkpoints: model (or its trainable part), optimizer, scheduler, RNG, data position.

Layout under `trainer.out_dir`::

    checkpoints/step_00000500.pt   every `save_every` steps; the last `keep_last` kept
    checkpoints/best.pt            when the recipe has a `best_metric`

Each file is written to a temporary sibling and renamed (`sldata.io.atomic_path`),
so a file named `step_*.pt` is always complete; `resume: auto` takes the newest one
that loads. Files load with `torch.load(weights_only=True)`: nothing in them runs code.

RNG states are per rank (`rng_ranks`, one entry per process, in rank order): under
torchrun each rank draws its own dropout masks, and a resume restores each rank's
own state, so a resumed run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import errno
import pickle
import random
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from sldata.errors import UserError
from sldata.io import TMP_MARK, atomic_path, remove_stale_temporaries, text_name

FORMAT = "sltrain-checkpoint"
VERSION = 1
CKPT_DIR = "checkpoints"
_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


@dataclass
class TrainProgress:
    """Where the run is: saved with every checkpoint so a resume continues exactly here."""

    step: int = 0  # optimizer steps completed
    epoch: int = 0
    batch_in_epoch: int = 0  # micro-batches of this rank's sampler consumed in `epoch`
    samples_seen: int = 0  # over all ranks
    best_value: float | None = None
    best_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainProgress":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def checkpoint_dir(out_dir: Path) -> Path:
    return Path(out_dir) / CKPT_DIR


def step_path(out_dir: Path, step: int) -> Path:
    return checkpoint_dir(out_dir) / f"step_{step:08d}.pt"


def best_path(out_dir: Path) -> Path:
    return checkpoint_dir(out_dir) / "best.pt"


# --- RNG ---------------------------------------------------------------------------

def rng_state() -> dict[str, Any]:
    """This process's RNG states (CUDA: its current device only, never waking the others)."""
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, (list, tuple)):  # version-1 checkpoints held every device's state
            dev = torch.cuda.current_device()
            cuda = cuda[dev] if dev < len(cuda) else None
        if cuda is not None:
            torch.cuda.set_rng_state(cuda)


@contextlib.contextmanager
def rng_kept() -> Iterator[None]:
    """The block may draw from (or reseed) the global RNGs; afterwards this process's streams are
    exactly where they were (per-item seeding, evaluation during training)."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def rank_rng_state(state: dict[str, Any], rank: int, world_size: int) -> dict[str, Any] | None:
    """The RNG state `rank` saved in checkpoint `state`; None when that rank has none to restore
    (the run had another number of processes, or predates per-rank states and rank > 0)."""
    ranks = state.get("rng_ranks")
    if ranks is not None and len(ranks) == world_size:
        return ranks[rank]
    return state.get("rng") if rank == 0 else None


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


# --- files -------------------------------------------------------------------------

def write_error(path: Path, exc: OSError) -> UserError:
    """A one-line UserError for a failed write of `path` (disk full, permissions, ...)."""
    reason = exc.strerror or str(exc)
    hint = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "; free some space and rerun (resume: auto continues from the last complete checkpoint)"
    return UserError(f"{text_name(path)}: cannot write: {reason}{hint}")


class _RecordWrites:
    """File wrapper that keeps the OSError of a failed write.

    torch.save turns a failed write into a RuntimeError about zip positions; the
    recorded OSError (e.g. ENOSPC) is what the user needs to hear.
    """

    def __init__(self, fh: Any):
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def write_torch(path: Path, obj: Any) -> Path:
    """THE torch file writer of sltrain (checkpoints, upstream exports): `torch.save` through
    `sldata.io.atomic_path` (temporary name, fsync, rename, directory fsync): never a half-written `path`.

    A failed write (disk full) removes the temporary, leaves earlier files as they
    were and raises a one-line UserError naming `path`.
    """
    rec: _RecordWrites | None = None
    try:
        with atomic_path(path, kind="file") as tmp:
            with open(tmp, "wb") as fh:
                rec = _RecordWrites(fh)
                torch.save(obj, rec)
                fh.flush()
    except OSError as exc:
        raise write_error(path, exc) from None
    except RuntimeError:
        if rec is not None and rec.error is not None:
            raise write_error(path, rec.error) from None
        raise
    return path


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """A checkpoint file: `payload` marked with this format and version, written by `write_torch`."""
    return write_torch(path, {"format": FORMAT, "version": VERSION, **payload})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on CPU; UserError (never a traceback) when it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign pickle, not a torch file
        # torch's own text runs to many lines and suggests weights_only=False, which is
        # unsafe advice for a file we refuse: keep its first line only.
        if isinstance(exc, pickle.UnpicklingError):
            reason = "it holds objects other than tensors and plain data; refused, since loading it could run code"
        else:
            reason = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise UserError(f"{path}: not a readable sltrain checkpoint ({type(exc).__name__}: {reason[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not an sltrain checkpoint")
    return data


def load_weights(recipe: Any, model: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Put checkpoint `state`'s model weights into `model` through the recipe (resume and evaluation
    alike); weights that do not fit are a UserError naming `path`."""
    try:
        recipe.load_model_state(model, state["model"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: does not match this config's model ({exc})") from None


def list_step_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    d = checkpoint_dir(out_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted(found)


def find_latest(out_dir: Path) -> Path | None:
    """Newest step checkpoint that loads (a damaged newest one falls back to the previous)."""
    for _, path in reversed(list_step_checkpoints(out_dir)):
        try:
            load_checkpoint(path)
            return path
        except UserError:
            continue
    return None


def clean_temporaries(out_dir: Path) -> None:
    """Remove the temporaries killed runs left in `checkpoints/` (they never look like checkpoints),
    by `sldata.io`'s rule: those of dead writers only."""
    d = checkpoint_dir(out_dir)
    if d.is_dir():
        for name in {p.name[:p.name.index(TMP_MARK)] for p in d.iterdir() if TMP_MARK in p.name}:
            remove_stale_temporaries(d / name)


def prune(out_dir: Path, keep_last: int) -> None:
    for _, path in list_step_checkpoints(out_dir)[:-keep_last]:
        path.unlink(missing_ok=True)
