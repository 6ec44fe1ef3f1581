"""OpenHands pose formats (SPEC §3): keypoint sets, the pkl reader, the h5 reader and writer.

One reader per format, one writer: `load_pkl` / `save_pkl` for per-video pkls,
`PoseH5` for reading a split's h5 (lazily, per process), `PoseH5Writer` for writing
one (atomically). Files from OpenHands' own `pkl_to_h5.py` (no attributes,
visibility `(F, N, 1)`) read the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from schemas.pose import POSE_FORMAT

from .errors import BadItemError, UserError
from .h5 import H5Pool
from .io import atomic_path, check_output, reading, safe_unpickle, text_name


@dataclass(frozen=True)
class KeypointSet:
    name: str
    parts: dict[str, tuple[int, int]]  # part -> [start, stop)

    @property
    def num_keypoints(self) -> int:
        return max(stop for _, stop in self.parts.values())


KEYPOINT_SETS: dict[str, KeypointSet] = {
    "openhands75": KeypointSet("openhands75", {
        "pose": (0, 33), "left_hand": (33, 54), "right_hand": (54, 75)}),
    "holistic543": KeypointSet("holistic543", {
        "pose": (0, 33), "face": (33, 501), "left_hand": (501, 522), "right_hand": (522, 543)}),
}


def keypoint_set(name: str) -> KeypointSet:
    try:
        return KEYPOINT_SETS[name]
    except KeyError:
        raise UserError(f"unknown keypoint set {name!r} (choose from: {', '.join(KEYPOINT_SETS)})") from None


def keypoint_set_for(n: int) -> KeypointSet | None:
    return next((ks for ks in KEYPOINT_SETS.values() if ks.num_keypoints == n), None)


@dataclass
class PoseSample:
    """One video's pose: keypoints (F, N, 3) and confidences (F, N), plus facts."""

    keypoints: np.ndarray
    confidences: np.ndarray
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def check(self, where: str = "pose") -> None:
        """Raise UserError unless shapes follow SPEC §3."""
        k, c = self.keypoints, self.confidences
        if k.ndim != 3 or k.shape[2] != 3:
            raise UserError(f"{where}: keypoints must be (F, N, 3), got {k.shape}")
        if c.ndim == 3 and c.shape[2] == 1:
            self.confidences = c = c[..., 0]
        if c.shape != k.shape[:2]:
            raise UserError(f"{where}: confidences must be (F, N) = {k.shape[:2]}, got {c.shape}")


# --- pkl ---------------------------------------------------------------------------

def pkl_problems(data: Any) -> list[tuple[str, str]]:
    """What makes an unpickled object not a pose pkl of SPEC §3, as (finding code, message).

    The one checker: `load_pkl` raises the first problem, `validate` reports them all.
    Empty when `data` holds float keypoints (F > 0, N, 3) and confidences (F, N) or
    (F, N, 1), with fps/width/height numbers when present.
    """
    if not isinstance(data, dict) or "keypoints" not in data or "confidences" not in data:
        got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        return [("schema", f"expected a dict with 'keypoints' and 'confidences', got {got}")]
    kp, conf = data["keypoints"], data["confidences"]
    if not isinstance(kp, np.ndarray) or not isinstance(conf, np.ndarray):
        return [("schema", "keypoints and confidences must be numpy arrays")]
    problems = [("bad-dtype", f"{name} dtype {a.dtype}, expected float")
                for name, a in (("keypoints", kp), ("confidences", conf)) if not np.issubdtype(a.dtype, np.floating)]
    if kp.ndim != 3 or kp.shape[2] != 3:
        problems.append(("pose-shape", f"keypoints shape {kp.shape}, expected (F, N, 3)"))
    else:
        fn = kp.shape[:2]
        if kp.shape[0] == 0:
            problems.append(("pose-shape", "keypoints have no frames (F == 0)"))
        if conf.shape not in (fn, (*fn, 1)):
            problems.append(("pose-shape", f"confidences shape {conf.shape}, expected {fn} or {(*fn, 1)}"))
    for extra in ("fps", "width", "height"):
        v = data.get(extra)
        if v is not None and not isinstance(v, (int, float, np.integer, np.floating)):
            problems.append(("schema", f"{extra} must be a number, got {type(v).__name__}"))
    return problems


def load_pkl(path: str | Path) -> PoseSample:
    """Read one OpenHands pose pkl with restricted unpickling (never runs code); UserError unless
    `pkl_problems` finds none."""
    path = Path(path)
    data = safe_unpickle(path)
    problems = pkl_problems(data)
    if problems:
        code, message = problems[0]
        raise BadItemError(code, f"{path}: {message}")
    extra = {k: v for k, v in data.items() if k not in ("keypoints", "confidences", "fps", "width", "height")}
    sample = PoseSample(data["keypoints"], data["confidences"], fps=_opt(data.get("fps"), float),
                        width=_opt(data.get("width"), int), height=_opt(data.get("height"), int), extra=extra)
    sample.check(str(path))  # squeezes (F, N, 1) confidences
    return sample


def check_pose_output(output: str | Path, inputs: Sequence[str | Path], command: str) -> None:
    """The output rule of the pose h5 writers (pkl2h5, merge-pose, import-pose), before any work.

    Never an input (links included), never a directory (`io.check_output`); an
    existing file is replaced only when it is this command's own earlier output:
    a pose h5 written by sldata whose `sldata_command` root attribute names this
    command (files of earlier versions have none and count as sldata's). A pose h5
    of another tool (OpenHands' own), of another sldata command (e.g. a merge-pose
    result given to pkl2h5), or any other file is refused.
    """
    import h5py

    output = Path(output)
    check_output(output, inputs=inputs, kind="file")
    if not os.path.lexists(output):
        return
    try:
        with h5py.File(output, "r") as f:
            ours = isinstance(f.get("keypoints"), h5py.Group) and "sldata_version" in f.attrs
            owner = f.attrs.get("sldata_command")
    except (OSError, ValueError):
        ours, owner = False, None
    if not ours:
        raise UserError(f"{text_name(output)} exists and is not a pose h5 written by sldata; refusing to "
                        "replace it (choose another output path, or remove it first)")
    if owner is not None and str(owner) != command:
        raise UserError(f"{text_name(output)} was written by `sldata {owner}`; `sldata {command}` does not "
                        "replace it (choose another output path, or remove it first)")


def _opt(v: Any, kind: type) -> Any:
    return None if v is None else kind(v)


def save_pkl(path: str | Path, sample: PoseSample) -> None:
    """Write one pkl atomically (float32 arrays, fps/width/height and extras kept)."""
    data: dict[str, Any] = {
        "keypoints": np.ascontiguousarray(sample.keypoints, dtype=np.float32),
        "confidences": np.ascontiguousarray(sample.confidences, dtype=np.float32),
        "fps": sample.fps, "width": sample.width, "height": sample.height,
    }
    data.update(sample.extra)
    with atomic_path(path, kind="file") as tmp:  # fsynced, renamed, folder fsynced (sldata.io)
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=4)


# --- h5 ----------------------------------------------------------------------------

#: Default layout of new pose datasets: chunks of 64 frames and lzf. lzf decompresses
#: ~8x faster than gzip-4; a DPC window (7x10 frames, downsample 3: 210 frames) read as
#: one slice reads 10-20% faster with 64-frame chunks than with 128 (fewer frames
#: decompressed outside the window), same file size (docs/benchmarks.md, "pose h5 layout").
#: Uncompressed reads are ~2x faster again but files ~35% larger; lzf is the default
#: because corpora of pose run to tens of GB and the loader is far from the bottleneck.
CHUNK_FRAMES = 64
DEFAULT_COMPRESSION = "lzf"


class PoseH5:
    """Read-only view of a pose h5: keys, per-video arrays and attributes, lazily opened."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such pose file")
        self._pool = H5Pool(max_open=1)
        self._datasets: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._datasets_pid = os.getpid()
        f = self._file
        if "keypoints" not in f:
            raise UserError(f"{self.path}: not a pose h5 (no 'keypoints' group)")

    @property
    def _file(self):
        try:
            return self._pool.get(self.path)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot open as HDF5 ({exc})") from None

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self._file.attrs.items()}

    @property
    def keypoint_set(self) -> KeypointSet | None:
        name = self.attrs.get("keypoint_set")
        if name in KEYPOINT_SETS:
            return KEYPOINT_SETS[name]
        keys = self.keys()
        return keypoint_set_for(self._file["keypoints"][keys[0]].shape[1]) if keys else None

    def keys(self) -> list[str]:
        return list(self._file["keypoints"].keys())

    def __contains__(self, key: str) -> bool:
        return key in self._file["keypoints"]

    def __len__(self) -> int:
        return len(self._file["keypoints"])

    def shape(self, key: str, group: str = "keypoints") -> tuple[int, ...] | None:
        """The shape of `group/key` without reading it; None when absent.

        A group (or anything else that is not an array) in its place is a UserError:
        readers check shapes before drawing or converting, never on a traceback.
        """
        import h5py

        if group not in self._file or key not in self._file[group]:
            return None
        obj = self._file[group].get(key)
        if not isinstance(obj, h5py.Dataset):
            raise UserError(f"{self.path}: {group}/{key} is not an array")
        return tuple(int(n) for n in obj.shape)

    def num_frames(self, key: str) -> int:
        return int(self._file["keypoints"][key].shape[0])

    def dtype(self, key: str, group: str = "keypoints") -> str:
        """The stored dtype of `group/key` ("float32", "float16"), without reading it."""
        return str(self._file[group][key].dtype)

    def video_attrs(self, key: str) -> dict[str, Any]:
        return {k: _plain(v) for k, v in self._file["keypoints"][key].attrs.items()}

    #: Open datasets kept per process. Reopening a dataset costs ~30 us and, worse, drops
    #: its chunk cache, so consecutive windows of a video would decompress the same
    #: chunks again (3.5x slower reads); each kept dataset holds up to 1 MiB of cache.
    MAX_OPEN_DATASETS = 64

    def _dataset(self, group: str, key: str):
        if self._datasets_pid != os.getpid():  # forked: these belong to the parent's handle
            self._datasets = OrderedDict()
            self._datasets_pid = os.getpid()
        ds = self._datasets.get((group, key))
        if ds is not None:
            self._datasets.move_to_end((group, key))
            return ds
        ds = self._file[group][key]
        self._datasets[(group, key)] = ds
        if len(self._datasets) > self.MAX_OPEN_DATASETS:
            self._datasets.popitem(last=False)
        return ds

    def _slice(self, group: str, key: str, start: int | None, stop: int | None) -> np.ndarray:
        """Frames [start, stop) read straight into a new array (one HDF5 call).

        A failed read (a garbled compressed chunk) is a DataError naming file and video,
        for every reader: render, stats, export and the training datasets.
        """
        ds = self._dataset(group, key)
        a, b, _ = slice(start, stop).indices(ds.shape[0]) if ds.shape else (0, 0, 1)
        out = np.empty((max(0, b - a), *ds.shape[1:]), dtype=ds.dtype)
        if out.size:
            with reading(self.path, video=key):
                ds.read_direct(out, np.s_[a:b])
        return out

    def keypoints(self, key: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """(F, N, 3) or a contiguous frame slice of it, read in one call."""
        return self._slice("keypoints", key, start, stop)

    def visibility(self, key: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """(F, N): an `(F, N, 1)` dataset is squeezed."""
        if "visibility" not in self._file or key not in self._file["visibility"]:
            raise UserError(f"{self.path}: no visibility for {key!r}")
        v = self._slice("visibility", key, start, stop)
        return v[..., 0] if v.ndim == 3 and v.shape[-1] == 1 else v

    def read(self, key: str) -> PoseSample:
        a = self.video_attrs(key)
        return PoseSample(self.keypoints(key), self.visibility(key), fps=a.get("fps"),
                          width=a.get("width"), height=a.get("height"),
                          extra={k: v for k, v in a.items() if k not in ("fps", "width", "height")})

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def close(self) -> None:
        self._datasets = OrderedDict()
        self._pool.close()

    def __enter__(self) -> "PoseH5":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self._pool = H5Pool(max_open=1)
        self._datasets = OrderedDict()
        self._datasets_pid = os.getpid()


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


@dataclass
class EncodedPose:
    """One video as the writer stores it: compressed chunks made by a worker process.

    Workers encode (`encode_sample`), the one writer stores the chunks as they are
    (`PoseH5Writer.add_encoded`), so compression runs in parallel and the file holds,
    chunk for chunk, what `PoseH5Writer.add` would have written (the same arrays and
    layout; lzf's compressed bytes may differ between processes, as h5py's lzf does
    not initialise its hash table).
    """

    shape: tuple[int, ...]
    dtype: str
    keypoints: list[tuple[tuple[int, ...], int, bytes]]  # (chunk offset, filter mask, bytes) or raw below
    visibility: list[tuple[tuple[int, ...], int, bytes]]
    attrs: dict[str, Any]
    raw: tuple[np.ndarray, np.ndarray] | None = None  # uncompressed files: plain arrays

    @property
    def nbytes(self) -> int:
        if self.raw is not None:
            return int(self.raw[0].nbytes + self.raw[1].nbytes)
        return sum(len(c[2]) for c in self.keypoints) + sum(len(c[2]) for c in self.visibility)


def _dataset_options(f: int, n: int, compression: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """create_dataset options of (keypoints, visibility): 64-frame chunks and lzf by default (SPEC §3)."""
    if not (compression and f):
        return {}, {}
    c = min(f, CHUNK_FRAMES)
    return ({"compression": compression, "chunks": (c, n, 3)}, {"compression": compression, "chunks": (c, n)})


def _video_attrs(sample: PoseSample, source: str | None) -> dict[str, Any]:
    attrs = {"fps": sample.fps, "width": sample.width, "height": sample.height,
             "num_frames": sample.num_frames, "source": source}
    return {k: (float(v) if k == "fps" else v) for k, v in attrs.items() if v is not None}


def encode_sample(sample: PoseSample, *, dtype: str = "float32", compression: str | None = DEFAULT_COMPRESSION,
                  source: str | None = None) -> EncodedPose:
    """Compress one video's arrays exactly as the writer would, in this process.

    The chunks are made by HDF5's own filter on a scratch file in memory (never
    written to disk; one per process, its two datasets deleted after each video,
    which saves ~20 % of the work over a new file per video), so they are the bytes
    `add` would store.
    """
    sample.check()
    kp = sample.keypoints.astype(dtype, copy=False)
    vis = sample.confidences.astype(dtype, copy=False)
    f, n = kp.shape[:2]
    attrs = _video_attrs(sample, source)
    compression = None if compression in (None, "none") else compression
    kopts, vopts = _dataset_options(f, n, compression)
    if not kopts:
        return EncodedPose(kp.shape, str(kp.dtype), [], [], attrs, raw=(np.ascontiguousarray(kp),
                                                                         np.ascontiguousarray(vis)))
    mem = _scratch()
    try:
        k = mem.create_dataset("k", data=kp, **kopts)
        v = mem.create_dataset("v", data=vis, **vopts)
        k.id.flush()
        v.id.flush()
        return EncodedPose(kp.shape, str(kp.dtype), _chunks(k), _chunks(v), attrs)
    finally:
        for name in ("k", "v"):
            if name in mem:
                del mem[name]


_SCRATCH: dict[int, Any] = {}  # pid -> in-memory h5py.File (a forked child makes its own)


def _scratch() -> Any:
    import h5py

    mem = _SCRATCH.get(os.getpid())
    if mem is None or not mem.id.valid:
        mem = h5py.File(f"sldata-scratch-{os.getpid()}", "w", driver="core", backing_store=False, libver="latest")
        _SCRATCH.clear()  # a parent's scratch file is the parent's: leave it open, forget it
        _SCRATCH[os.getpid()] = mem
    return mem


def _chunks(ds: Any) -> list[tuple[tuple[int, ...], int, bytes]]:
    out = []
    for i in range(ds.id.get_num_chunks()):
        offset = ds.id.get_chunk_info(i).chunk_offset
        mask, data = ds.id.read_direct_chunk(offset)
        out.append((tuple(offset), int(mask), bytes(data)))
    return out


def h5_error_reason(exc: BaseException) -> str:
    """A one-line reason from an h5py/OS error: the errno's text when HDF5 names one."""
    import errno as _errno
    import re

    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        m = re.search(r"errno = (\d+)", str(exc))
        code = int(m.group(1)) if m else None
    if code and code in _errno.errorcode:
        from .errors import _ERRNO_TEXT

        return _ERRNO_TEXT.get(code) or os.strerror(code)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class PoseH5Writer:
    """Writes a pose h5 under a temporary name; it appears at `path` only on `close()`.

    Use as a context manager: an exception discards the partial file.

    A failed write (disk full, I/O error) must never reach HDF5's close path with
    dirty state: when a dataset is closed with unwritten chunks after a failed
    write, or the library closes a file whose flush failed at exit, HDF5 2.0 /
    h5py 3.16 crash with signal 11. So every video is flushed before its dataset
    objects are released, and the first failure "poisons" the writer: the file
    descriptor HDF5 writes through is pointed at /dev/null, the temporary is
    removed, and the close that follows completes harmlessly. The error comes out
    as a UserError naming the output file (exit 2).
    """

    def __init__(self, path: str | Path, keypoint_set: str = "openhands75", dtype: str = "float32",
                 compression: str | None = DEFAULT_COMPRESSION, root_attrs: dict[str, Any] | None = None,
                 *, inputs: tuple[str | Path, ...] = (), start_from: str | Path | None = None):
        """start_from: a complete pose h5 of the same keypoint set that becomes this file's
        beginning (moved, not copied: pkl2h5 turns its largest part into the output this way)."""
        if dtype not in ("float32", "float16"):
            raise UserError(f"dtype must be float32 or float16, not {dtype!r}")
        self.path = Path(path)
        self.kset = globals()["keypoint_set"](keypoint_set)
        self.dtype = np.dtype(dtype)
        self.compression = None if compression in (None, "none") else compression
        self._ctx = atomic_path(self.path, inputs=inputs, kind="file")
        self._tmp = self._ctx.__enter__()
        self._f = None
        self._failed: BaseException | None = None
        self._held: list[Any] = []  # datasets written since the last flush
        try:
            self._open(start_from, root_attrs)
        except BaseException:
            self.abort()  # no temporary left behind, even when the very first write fails
            raise
        self.count = len(self._kp)

    def _open(self, start_from: str | Path | None, root_attrs: dict[str, Any] | None) -> None:
        import h5py

        from . import __version__

        with self._guard():
            if start_from is not None:
                os.replace(start_from, self._tmp)
                self._f = h5py.File(self._tmp, "r+")
                if _plain(self._f.attrs.get("keypoint_set")) != self.kset.name:
                    raise UserError(f"{text_name(start_from)}: not a pose h5 of {self.kset.name}")
                self._kp, self._vis = self._f["keypoints"], self._f["visibility"]
            else:
                self._f = h5py.File(self._tmp, "w")
                self._kp = self._f.create_group("keypoints")
                self._vis = self._f.create_group("visibility")
            attrs = {"format": POSE_FORMAT, "keypoint_set": self.kset.name, "sldata_version": __version__}
            attrs.update({k: v for k, v in (root_attrs or {}).items() if v is not None})
            self._set_attrs(attrs)

    # -- failure handling -----------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Run HDF5 writes; the first failure poisons the file and becomes a UserError."""
        if self._failed is not None:
            raise UserError(f"{text_name(self.path)}: cannot write after an earlier failure")
        try:
            yield
        except UserError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            self._poison(exc)
            raise UserError(f"{text_name(self.path)}: cannot write: {h5_error_reason(exc)}") from None

    def _poison(self, exc: BaseException) -> None:
        self._failed = exc
        if self._f is None:
            return
        try:
            fd = self._f.id.get_vfd_handle()
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)  # HDF5 keeps writing through fd; from now on into /dev/null
            finally:
                os.close(null)
            self._held.clear()
        except Exception:  # no descriptor to redirect: close will report, not crash, in every case seen
            pass

    def _set_attrs(self, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            if v is not None:
                self._f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v

    # -- writing --------------------------------------------------------------------

    def __contains__(self, key: str) -> bool:
        return key in self._kp

    def update_attrs(self, attrs: dict[str, Any]) -> None:
        """Set root attributes known only once every video is in (e.g. provenance of a pack)."""
        with self._guard():
            self._set_attrs(attrs)

    def _check_key(self, key: str, n: int) -> None:
        if "/" in key or key in (".", ""):
            raise UserError(f"pose key {key!r} must be flat (no '/')")
        if key in self._kp:
            raise UserError(f"duplicate pose key {key!r}")
        if n != self.kset.num_keypoints:
            raise UserError(f"{key}: {n} keypoints, but this file holds {self.kset.name} "
                            f"({self.kset.num_keypoints})")

    def add(self, key: str, sample: PoseSample, source: str | None = None) -> None:
        sample.check(key)
        self._check_key(key, sample.keypoints.shape[1])
        f, n = sample.keypoints.shape[:2]
        kopts, vopts = _dataset_options(f, n, self.compression)
        with self._guard():
            kp = self._kp.create_dataset(key, data=sample.keypoints.astype(self.dtype, copy=False), **kopts)
            vis = self._vis.create_dataset(key, data=sample.confidences.astype(self.dtype, copy=False), **vopts)
            for k, v in _video_attrs(sample, source).items():
                kp.attrs[k] = v
            self._f.flush()  # before kp/vis are released: a dataset closed dirty after a failure crashes HDF5
            del kp, vis
        self.count += 1

    def add_encoded(self, key: str, enc: EncodedPose) -> None:
        """Store a video compressed by `encode_sample` (same dtype and compression as this writer)."""
        self._check_key(key, enc.shape[1])
        if np.dtype(enc.dtype) != self.dtype:
            raise UserError(f"{key}: encoded as {enc.dtype}, this file holds {self.dtype}")
        if enc.raw is not None and self.compression:
            raise UserError(f"{key}: encoded without compression, this file uses {self.compression}")
        f, n = enc.shape[:2]
        kopts, vopts = _dataset_options(f, n, self.compression)
        with self._guard():
            if enc.raw is not None:
                kp = self._kp.create_dataset(key, data=enc.raw[0])
                vis = self._vis.create_dataset(key, data=enc.raw[1])
            else:
                kp = self._kp.create_dataset(key, shape=enc.shape, dtype=self.dtype, **kopts)
                vis = self._vis.create_dataset(key, shape=enc.shape[:2], dtype=self.dtype, **vopts)
                for ds, chunks in ((kp, enc.keypoints), (vis, enc.visibility)):
                    for offset, mask, data in chunks:
                        ds.id.write_direct_chunk(offset, data, mask)
            for k, v in enc.attrs.items():
                kp.attrs[k] = v
            # Chunks went straight to the file; the datasets are released only after a flush
            # (see the class docstring), a flush every HOLD videos rather than every video.
            self._held.append((kp, vis))
            if len(self._held) >= self.HOLD:
                self._f.flush()
                self._held.clear()
        self.count += 1

    #: Videos stored by add_encoded between two flushes.
    HOLD = 32

    def copy_from(self, src: Any, key: str, *, flush: bool = True, check: bool = True) -> None:
        """Copy one video (both datasets, their attributes, their chunks as stored) from an open h5py.File.

        check=False: the caller knows the key is new and of this keypoint set (pkl2h5's own parts).
        """
        import h5py

        if check:
            self._check_key(key, src["keypoints"][key].shape[1])
        name = key.encode()
        with self._guard():
            h5py.h5o.copy(src["keypoints"].id, name, self._kp.id, name)
            if "visibility" in src and key in src["visibility"]:
                h5py.h5o.copy(src["visibility"].id, name, self._vis.id, name)
            if flush:
                self._f.flush()
        self.count += 1

    def flush(self) -> None:
        with self._guard():
            self._f.flush()
            self._held.clear()

    def close(self) -> Path:
        if self._failed is not None:
            self.abort()
            raise UserError(f"{self.path}: cannot write: {h5_error_reason(self._failed)}")
        try:
            with self._guard():
                self._f.flush()  # a failure here still finds the file open, so it can be poisoned
                self._held.clear()
                self._f.close()  # atomic_path fsyncs the file and its folder around the rename
        except BaseException as exc:
            self.abort()
            raise exc from None
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        try:
            if self._f is not None and self._f.id.valid:
                if self._failed is None:
                    self._poison(RuntimeError("aborted"))  # nothing more needs to reach the disk
                try:
                    self._f.close()
                except Exception:
                    pass
        finally:
            try:
                self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
            except RuntimeError:
                pass

    def __enter__(self) -> "PoseH5Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
