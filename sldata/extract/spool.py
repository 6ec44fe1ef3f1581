"""Landmarks stream to disk as they are computed; the pkl is assembled from the spool.

A one-hour video at 25 fps is 90,000 frames: kept in per-frame lists until the
video ends, that is ~0.3 GiB (openhands75) or ~1.8 GiB (holistic543) per worker.
`FrameSpool` keeps one block of frames in memory and appends full blocks to two
raw temporary files beside the pkl; `write_spooled_pkl` then writes the same
pickle `save_pkl` would (a dict of numpy arrays, `meta` last), copying the array
bytes from the spool in fixed-size chunks. Peak memory no longer depends on the
video's length. The temporaries carry the pkl's temporary mark, so a killed run's
leftovers are removed by the next run like any other temporary.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..io import atomic_path, tmp_name

BLOCK_FRAMES = 256
COPY_BYTES = 4 << 20


def spool_names(pkl: Path) -> tuple[Path, Path]:
    """The outputs whose temporaries the spool is: `STEM.keypoints`, `STEM.confidences` beside the pkl.

    Not temporaries of the pkl itself: writing the pkl clears the pkl's stale
    temporaries of this process, and the spool is still being read then.
    """
    return pkl.with_name(pkl.stem + ".keypoints"), pkl.with_name(pkl.stem + ".confidences")


def spool_paths(pkl: Path) -> tuple[Path, Path]:
    a, b = spool_names(pkl)
    return tmp_name(a), tmp_name(b)


class FrameSpool:
    """Append-only (F, N, 3) keypoints and (F, N) confidences, float32, on disk."""

    def __init__(self, pkl: str | Path, num_keypoints: int, block: int = BLOCK_FRAMES):
        self.paths = spool_paths(Path(pkl))
        self.n = num_keypoints
        self.frames = 0
        self._kp = np.zeros((block, num_keypoints, 3), np.float32)
        self._conf = np.zeros((block, num_keypoints), np.float32)
        self._fill = 0
        self._files: list[BinaryIO] = [open(p, "wb") for p in self.paths]

    def append(self, kp: np.ndarray, conf: np.ndarray) -> None:
        self._kp[self._fill] = kp
        self._conf[self._fill] = conf
        self._fill += 1
        self.frames += 1
        if self._fill == len(self._kp):
            self._flush()

    def _flush(self) -> None:
        if self._fill:
            self._files[0].write(self._kp[: self._fill].tobytes())
            self._files[1].write(self._conf[: self._fill].tobytes())
            self._fill = 0

    def finish(self) -> None:
        """Write the last partial block and close the files (they stay for `write_spooled_pkl`)."""
        self._flush()
        for fh in self._files:
            fh.close()

    def remove(self) -> None:
        for fh in self._files:
            fh.close()
        for p in self.paths:
            p.unlink(missing_ok=True)

    def __enter__(self) -> "FrameSpool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class _FileBytes:
    """Stands for a `bytes` object whose content is a file; the pickler streams it."""

    def __init__(self, path: Path, nbytes: int):
        self.path, self.nbytes = path, nbytes


class _SpooledArray:
    """Pickles exactly as a C-contiguous float32 ndarray of `shape` does, data read from a file."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.path, self.shape = path, shape

    def __reduce__(self) -> tuple:
        fn, args, state = np.empty(0, np.float32).__reduce__()
        version, _, dtype, fortran, _ = state
        nbytes = int(np.prod(self.shape)) * 4
        return fn, args, (version, self.shape, dtype, fortran, _FileBytes(self.path, nbytes))


class _StreamingPickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """The pure-Python pickler, plus: a `_FileBytes` is written as BINBYTES, copied in chunks."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_file_bytes(self, obj: _FileBytes) -> None:
        n = obj.nbytes
        if os.path.getsize(obj.path) != n:
            raise OSError(f"{obj.path}: spool holds {os.path.getsize(obj.path)} bytes, expected {n}")
        if n <= 0xFF:
            header = pickle.SHORT_BINBYTES + bytes([n])
        elif n > 0xFFFFFFFF:
            header = pickle.BINBYTES8 + struct.pack("<Q", n)
        else:
            header = pickle.BINBYTES + struct.pack("<I", n)
        self.framer.write_large_bytes(header, b"")  # ends the current frame, writes the header raw
        with open(obj.path, "rb") as src:
            while chunk := src.read(COPY_BYTES):
                self.framer.file_write(chunk)
        self.memoize(obj)

    dispatch[_FileBytes] = _save_file_bytes


def write_spooled_pkl(path: str | Path, spool: FrameSpool, *, fps: float | None, width: int | None,
                      height: int | None, extra: dict[str, Any]) -> None:
    """Write the pkl (atomically, fsynced) that `save_pkl` would write for the spooled frames."""
    spool.finish()
    f, n = spool.frames, spool.n
    data: dict[str, Any] = {
        "keypoints": _SpooledArray(spool.paths[0], (f, n, 3)),
        "confidences": _SpooledArray(spool.paths[1], (f, n)),
        "fps": fps, "width": width, "height": height,
    }
    data.update(extra)
    with atomic_path(path, kind="file") as tmp:  # fsynced and renamed by atomic_path
        with open(tmp, "wb") as fh:
            _StreamingPickler(fh, protocol=4).dump(data)
