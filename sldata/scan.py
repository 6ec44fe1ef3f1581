"""The one walker of feature and pose h5 files: compact per-file summaries, in a process pool.

validate, stats and shard all read HDF5 headers (and, deep, data) through here. A worker opens one file (or a slice of its top-level names) with the low-level
h5py API (about 2-3x faster than h5py.File/Group/Dataset objects for
shape-only passes), returns `{video: {clip: shape}}` plus the per-dataset
problems it can judge alone (dtype, rank, empty, unreadable, non-finite). The
parent does every cross-file check. Workers never raise: a broken file is a
result, not an exception.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .h5 import open_failure
from .pool import Pool, WorkerLost

#: Below this many bytes of input the pool's start-up costs more than it saves.
POOL_MIN_BYTES = 64 * 2**20
#: Deep reads of bigger datasets go in row blocks of about this size (constant memory).
BLOCK_BYTES = 32 * 2**20

Problem = tuple[str, "str | None", "str | None", str]  # (code, video, clip, message)


@dataclass
class ScanResult:
    """What one task saw in one file (or one slice of its names)."""

    path: str
    error: str | None = None  # the file could not be opened at all
    entries: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    attrs: dict[str, Any] | None = None
    datasets: int = 0
    values: int = 0
    #: with `facts`: {video: {clip: dtype name}} and {video: bytes on disk} (stats, shard)
    dtypes: dict[str, dict[str, str]] = field(default_factory=dict)
    nbytes: dict[str, int] = field(default_factory=dict)
    #: with `summarise`: mean/std/min/max of every value read (stats --deep)
    summary: "ValueAcc | None" = None


def _names(gid) -> list[str]:
    # interned: clip names repeat in every video, and pickle then sends each one once per file
    return [sys.intern(n.decode("utf-8", "surrogateescape")) for n in gid]


def _b(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _dtype_name(did) -> str:
    try:
        return str(did.dtype)
    except Exception:  # compound/opaque types h5py cannot map
        return "unsupported HDF5 type"


def nonfinite_count(a: np.ndarray) -> int:
    """How many NaN/Inf values; float16 uses an exponent-bit test (4x faster than isfinite)."""
    if a.dtype == np.float16:
        exp = np.bitwise_and(a.view(np.uint16), 0x7C00)
        if not exp.size or exp.max() != 0x7C00:
            return 0
        return int(np.count_nonzero(exp == 0x7C00))
    ok = np.isfinite(a)
    return 0 if ok.all() else int(a.size - np.count_nonzero(ok))


def iter_blocks(did, shape: tuple[int, ...], itemsize: int) -> Iterator[np.ndarray]:
    """Read a dataset whole, or in blocks of leading rows when it is large."""
    import h5py

    row = max(1, int(np.prod(shape[1:], dtype=np.int64)) * itemsize) if len(shape) > 1 else itemsize
    total = row * (shape[0] if shape else 1)
    if not shape or total <= BLOCK_BYTES:
        from h5py import h5s

        out = np.empty(shape, dtype=did.dtype)  # the low-level read skips h5py's selection machinery
        if out.size:
            did.read(h5s.ALL, h5s.ALL, out)
        yield out
        return
    ds = h5py.Dataset(did)
    step = max(1, BLOCK_BYTES // row)
    for start in range(0, shape[0], step):
        yield ds[start:start + step]


def _open(path: str):
    from h5py import h5f, h5g

    fid = h5f.open(_b(path), h5f.ACC_RDONLY)
    return fid, h5g.open(fid, b"/")


def _part(names: list[str], part: int, nparts: int) -> list[str]:
    return sorted(names)[part::nparts] if nparts > 1 else names


_FLOAT_CLASS = 1  # h5py.h5t.FLOAT (H5T_FLOAT), fixed by the HDF5 format


def _dataset_facts(did) -> tuple[tuple[int, ...], bool, int]:
    """(shape, is_float, itemsize) without building a numpy dtype (the slow part of `.dtype`)."""
    tid = did.get_type()
    return did.get_space().shape, tid.get_class() == _FLOAT_CLASS, tid.get_size()


def scan_feature_file(path: str, part: int = 0, nparts: int = 1, deep: bool = False, facts: bool = False,
                      summarise: bool = False, names_only: bool = False,
                      videos: Sequence[str] | None = None) -> ScanResult:
    """A feature file (v1 file or v2 shard): group per video, (T, D) float dataset per clip.

    deep: read every float dataset (non-finite values). facts: also each clip's
    dtype name and each video's bytes on disk (stats, shard's plan and
    verification). summarise: read every dataset into `summary` (stats --deep).
    names_only: list clip names (entries' shapes are None) without opening any
    dataset: the cheapest pass, for shard's planning of whole-file copies.
    videos: only these videos (shard's copy workers: the videos of one shard file).
    """
    from h5py import h5d, h5g, h5o

    res = ScanResult(path, summary=ValueAcc() if summarise else None)
    try:
        fid, root = _open(path)
    except Exception as exc:
        res.error = f"cannot open: {open_failure(exc)}"
        return res
    batch = _DeepBatch(res)
    shapes: dict[tuple[int, ...], tuple[int, ...]] = {}
    try:
        for video in (_part(_names(root), part, nparts) if videos is None else videos):
            try:
                gid = h5o.open(root, _b(video))
            except Exception as exc:
                res.problems.append(("h5-unreadable", video, None, f"cannot open group ({exc})"))
                continue
            if not isinstance(gid, h5g.GroupID):
                res.problems.append(("h5-structure", video, None, "expected a group of clip datasets, found a "
                                     f"{type(gid).__name__.replace('ID', '').lower()}"))
                continue
            clips: dict[str, tuple[int, ...]] = {}
            res.entries[video] = clips
            try:
                clip_names = _names(gid)
            except Exception as exc:
                res.problems.append(("h5-unreadable", video, None, f"cannot list clips ({exc})"))
                continue
            if names_only:
                res.entries[video] = dict.fromkeys(clip_names)
                continue
            if facts:
                res.dtypes[video] = dtypes = {}
                res.nbytes[video] = 0
            for clip in clip_names:
                try:
                    did = h5o.open(gid, _b(clip))
                    if not isinstance(did, h5d.DatasetID):
                        res.problems.append(("h5-structure", video, clip, "expected a dataset, found a group"))
                        continue
                    shape, is_float, size = _dataset_facts(did)
                except Exception as exc:
                    res.problems.append(("h5-unreadable", video, clip, f"cannot open dataset ({exc})"))
                    continue
                clips[clip] = shape = shapes.setdefault(shape, shape)  # few distinct shapes: share them
                res.datasets += 1
                if facts:
                    dtypes[clip] = f"float{8 * size}" if is_float else _dtype_name(did)
                    res.nbytes[video] += did.get_storage_size()
                if not is_float:
                    res.problems.append(("bad-dtype", video, clip, f"dtype {_dtype_name(did)}, expected float16/float32"))
                if len(shape) != 2:
                    res.problems.append(("bad-shape", video, clip, f"shape {shape}, expected 2-D (T, D)"))
                elif shape[0] == 0:
                    res.problems.append(("bad-shape", video, clip, f"shape {shape}: no frames (T == 0)"))
                if (deep or summarise) and is_float:
                    batch.add(video, clip, did, shape, size)
                elif summarise:
                    _summarise_other(res, did, video, clip)
            if deep or summarise:
                batch.flush()
    finally:
        fid.close()
    return res


class ValueAcc:
    """Streaming mean/std/min/max, non-finite and all-zero-frame counts; mergeable across workers."""

    def __init__(self) -> None:
        self.n = 0
        self.s = 0.0
        self.s2 = 0.0
        self.lo = math.inf
        self.hi = -math.inf
        self.non_finite = 0
        self.zero_frames = 0

    def add(self, a: np.ndarray) -> None:
        a = np.asarray(a)
        if a.dtype.kind != "f":
            a = a.astype(np.float64)
        bad = nonfinite_count(a)
        x = a[np.isfinite(a)] if bad else a.reshape(-1)
        self.non_finite += bad
        if x.size:
            x = x.astype(np.float32, copy=False) if x.dtype.itemsize < 4 else x
            self.n += int(x.size)
            self.s += float(x.sum(dtype=np.float64))
            self.s2 += float(np.dot(x, x))
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))
        if a.ndim == 2:
            self.zero_frames += int(a.shape[0] - np.count_nonzero(a.any(axis=1)))

    def add_spans(self, buf: np.ndarray, spans: list[tuple[str, str, tuple[int, ...], int, int]]) -> None:
        """Clips read back to back into `buf` (video, clip, shape, offset, size): one set of numpy
        calls for the values, one per run of same-D clips for the all-zero frames."""
        if not spans:
            return
        first, last = spans[0][3], spans[-1][3] + spans[-1][4]
        whole = last - first == sum(sp[4] for sp in spans)
        if not whole:  # a clip in between could not be read: leave it out
            for _, _, shape, o, k in spans:
                self.add(buf[o:o + k].reshape(shape))
            return
        zeros = self.zero_frames
        self.add(buf[first:last])
        self.zero_frames = zeros
        i = 0
        while i < len(spans):
            shape = spans[i][2]
            j = i
            while j + 1 < len(spans) and len(spans[j + 1][2]) == 2 and len(shape) == 2 \
                    and spans[j + 1][2][1] == shape[1]:
                j += 1
            if len(shape) == 2 and shape[1]:
                rows = buf[spans[i][3]:spans[j][3] + spans[j][4]].reshape(-1, shape[1])
                self.zero_frames += int(rows.shape[0] - np.count_nonzero(rows.any(axis=1)))
            i = j + 1

    def merge(self, o: "ValueAcc") -> None:
        self.n += o.n
        self.s += o.s
        self.s2 += o.s2
        self.lo, self.hi = min(self.lo, o.lo), max(self.hi, o.hi)
        self.non_finite += o.non_finite
        self.zero_frames += o.zero_frames

    def result(self) -> dict[str, Any]:
        mean = self.s / self.n if self.n else None
        std = math.sqrt(max(self.s2 / self.n - mean * mean, 0.0)) if self.n else None
        return {"mean": mean, "std": std, "min": self.lo if self.n else None, "max": self.hi if self.n else None,
                "non_finite": self.non_finite, "all_zero_frames": self.zero_frames}


_FLOAT_BY_SIZE = {2: np.dtype(np.float16), 4: np.dtype(np.float32), 8: np.dtype(np.float64)}


class _DeepBatch:
    """Reads small float datasets into one shared buffer and checks them with one numpy call.

    Clips are small (a few KB to MB): per-array numpy calls would cost more than the
    read. The buffer holds at most BLOCK_BYTES, so memory stays constant; a dataset
    bigger than that is read alone, in row blocks.
    """

    def __init__(self, res: ScanResult):
        self.res = res
        self.items: list[tuple[str, str, Any, tuple[int, ...], int]] = []
        self.size = 0  # itemsize of the batch
        self.nbytes = 0

    def add(self, video: str, clip: str, did, shape: tuple[int, ...], itemsize: int) -> None:
        n = int(np.prod(shape, dtype=np.int64)) * itemsize
        if itemsize not in _FLOAT_BY_SIZE or n > BLOCK_BYTES:
            _deep_read(self.res, did, shape, itemsize, True, video, clip)
            return
        if self.items and (itemsize != self.size or self.nbytes + n > BLOCK_BYTES):
            self.flush()
        self.items.append((video, clip, did, shape, n // itemsize))
        self.size = itemsize
        self.nbytes += n

    def flush(self) -> None:
        if not self.items:
            return
        from h5py import h5s

        total = sum(it[4] for it in self.items)
        buf = np.empty(total, _FLOAT_BY_SIZE[self.size])
        spans = []
        failed: set[tuple[str, str]] = set()
        off = 0
        for video, clip, did, shape, k in self.items:
            view = buf[off:off + k]
            try:
                if k:
                    did.read(h5s.ALL, h5s.ALL, view.reshape(shape))  # HDF5 converts byte order if needed
            except Exception as exc:
                self.res.problems.append(("h5-unreadable", video, clip, f"cannot read data ({exc})"))
                failed.add((video, clip))
                view[:] = 0
            spans.append((video, clip, shape, off, k))
            off += k
        self.res.values += total
        if self.res.summary is not None:
            self.res.summary.add_spans(buf, [sp for sp in spans if (sp[0], sp[1]) not in failed])
        if nonfinite_count(buf):
            for video, clip, shape, o, k in spans:
                bad = nonfinite_count(buf[o:o + k])
                if bad:
                    self.res.problems.append(("non-finite", video, clip, f"{bad} NaN/Inf value(s) in {shape}"))
        self.items, self.nbytes = [], 0


def _deep_read(res: ScanResult, did, shape: tuple[int, ...], itemsize: int, is_float: bool,
               video: str | None, clip: str | None) -> list[np.ndarray] | None:
    """Read one float dataset fully and count non-finite values (non-float: already bad-dtype)."""
    if not is_float:
        return None
    bad = 0
    acc = ValueAcc() if res.summary is not None else None
    try:
        for block in iter_blocks(did, shape, itemsize):
            res.values += block.size
            bad += nonfinite_count(block)
            if acc is not None:
                acc.add(block)
    except Exception as exc:
        res.problems.append(("h5-unreadable", video, clip, f"cannot read data ({exc})"))
        return None
    if acc is not None and res.summary is not None:
        res.summary.merge(acc)
    if bad:
        res.problems.append(("non-finite", video, clip, f"{bad} NaN/Inf value(s) in {shape}"))
    return None


def _summarise_other(res: ScanResult, did: Any, video: str, clip: str) -> None:
    """A non-float dataset's values into the summary (stats --deep counts every clip)."""
    import h5py

    try:
        a = h5py.Dataset(did)[()]
    except Exception as exc:
        res.problems.append(("h5-unreadable", video, clip, f"cannot read data ({exc})"))
        return
    assert res.summary is not None
    res.summary.add(np.asarray(a))


# --- pose h5 -------------------------------------------------------------------------

#: Normalised image coordinates beyond this margin are almost surely wrong (pixels, swapped axes).
#: "Far outside the image": MediaPipe extrapolates landmarks it cannot see, so a close-up
#: signer's hips and ankles land at y ~ 2-4 in perfectly good extractions. Beyond this
#: range a value is pixel coordinates or garbage.
POSE_RANGE = (-4.0, 5.0)


def _attrs(obj_id) -> dict[str, Any]:
    import h5py

    from .pose import _plain

    hl = h5py.Group(obj_id) if obj_id.__class__.__name__ == "GroupID" else h5py.Dataset(obj_id)
    out = {}
    for k in hl.attrs:
        try:
            out[k] = _plain(hl.attrs[k])
        except Exception as exc:  # an attribute h5py cannot decode
            out[k] = f"<unreadable: {exc}>"
    return out


def out_of_range(xy: np.ndarray) -> np.ndarray:
    """Finite coordinates beyond POSE_RANGE (NaN/Inf are non-finite findings, not range ones)."""
    lo, hi = POSE_RANGE
    with np.errstate(invalid="ignore"):
        return ((xy < lo) & (xy > -np.inf)) | ((xy > hi) & (xy < np.inf))


def scan_pose_file(path: str, part: int = 0, nparts: int = 1, deep: bool = False) -> ScanResult:
    """A pose h5: `keypoints/KEY` (F, N, 3) and `visibility/KEY` (F, N) or (F, N, 1).

    entries: {key: (kp_shape | None, vis_shape | None, attrs)}.
    """
    from h5py import h5d, h5g, h5o

    res = ScanResult(path)
    try:
        fid, root = _open(path)
    except Exception as exc:
        res.error = f"cannot open: {open_failure(exc)}"
        return res
    try:
        if part == 0:
            res.attrs = _attrs(root)
        groups = {}
        for name in ("keypoints", "visibility"):
            try:
                gid = h5o.open(root, _b(name))
            except KeyError:
                continue
            except Exception as exc:
                res.problems.append(("h5-unreadable", None, None, f"cannot open group {name!r} ({exc})"))
                continue
            if isinstance(gid, h5g.GroupID):
                groups[name] = gid
            elif part == 0:
                res.problems.append(("h5-structure", None, None, f"{name!r} is not a group"))
        if "visibility" not in groups and part == 0:
            res.problems.append(("pose-shape", None, None, "no 'visibility' group"))
        names = {g: set(_names(gid)) for g, gid in groups.items()}
        keys = _part(sorted(set().union(*names.values())) if names else [], part, nparts)
        for key in keys:
            facts = {}
            for g, gid in groups.items():
                if key not in names[g]:
                    continue
                try:
                    did = h5o.open(gid, _b(key))
                    if not isinstance(did, h5d.DatasetID):
                        res.problems.append(("h5-structure", key, None, f"{g}/{key} is not a dataset"))
                        continue
                    shape, is_float, size = _dataset_facts(did)
                except Exception as exc:
                    res.problems.append(("h5-unreadable", key, None, f"cannot open {g}/{key} ({exc})"))
                    continue
                res.datasets += 1
                facts[g] = (did, shape, is_float, size)
                if not is_float:
                    res.problems.append(("bad-dtype", key, None, f"{g}/{key} dtype {_dtype_name(did)}, expected float"))
            kp = facts.get("keypoints")
            vis = facts.get("visibility")
            attrs = {}
            if kp is not None:
                try:
                    attrs = _attrs(kp[0])
                except Exception as exc:
                    res.problems.append(("h5-unreadable", key, None, f"cannot read attributes ({exc})"))
            res.entries[key] = (kp[1] if kp else None, vis[1] if vis else None, attrs)
            if deep:
                if kp is not None:
                    _deep_pose(res, key, kp)
                if vis is not None:
                    _deep_read(res, vis[0], vis[1], vis[3], vis[2], key, None)
    finally:
        fid.close()
    return res


def _deep_pose(res: ScanResult, key: str, facts) -> None:
    did, shape, is_float, size = facts
    if not is_float:
        return
    bad = out_frames = 0
    lo, hi = POSE_RANGE
    try:
        for block in iter_blocks(did, shape, size):
            res.values += block.size
            bad += nonfinite_count(block)
            if block.ndim == 3 and block.shape[-1] >= 2:
                xy = block[..., :2]
                out_frames += int(np.count_nonzero(out_of_range(xy).any(axis=(1, 2))))
    except Exception as exc:
        res.problems.append(("h5-unreadable", key, None, f"cannot read keypoints ({exc})"))
        return
    if bad:
        res.problems.append(("non-finite", key, None, f"{bad} NaN/Inf value(s) in keypoints {shape}"))
    if out_frames:
        res.problems.append(("pose-range", key, None, f"{out_frames} of {shape[0]} frames have x/y outside "
                             f"[{lo:g}, {hi:g}] (normalised image coordinates expected)"))


# --- running tasks ------------------------------------------------------------------

Task = tuple[Any, ...]


def _call(job: tuple[Callable[..., Any], Task]) -> Any:
    """fn(*task) in a pool worker (module level: the pool pickles it)."""
    fn, task = job
    return fn(*task)


def _crashed(task: Task, exc: BaseException) -> ScanResult:
    """The result of a task whose worker died (WorkerLost) or whose function raised (a bug guard)."""
    why = str(exc) if isinstance(exc, WorkerLost) else f"{type(exc).__name__}: {exc}"
    return ScanResult(str(task[0]), error=f"reading crashed the worker ({why})")


def run_tasks(fn: Callable[..., Any], tasks: Sequence[Task], workers: int,
              on_done: Callable[[], None] | None = None) -> Iterator[Any]:
    """fn(*task) for every task, in completion order, through `sldata.pool.Pool` (in process when workers <= 1).

    The workers start before this returns, so the caller can do its own work
    (parse annotations) while they scan. A task whose worker dies twice (a
    segfault inside HDF5 on a corrupt file) becomes a crash result for its file:
    validate reports it as `h5-unreadable`, stats as a problem of that file.
    """
    pool = Pool(min(workers, len(tasks)) if tasks else 1, in_process=workers <= 1 or len(tasks) <= 1,
                name="sldata-scan")
    return _results(pool.imap_unordered(_call, [(fn, t) for t in tasks]), on_done)


def _results(pairs: Iterator[tuple[Any, Any]], on_done: Callable[[], None] | None) -> Iterator[Any]:
    for (_, task), res in pairs:
        yield _crashed(task, res) if isinstance(res, (WorkerLost, RuntimeError)) else res
        if on_done:
            on_done()


def plan_tasks(files: Sequence[str], workers: int, deep: bool) -> tuple[list[Task], int]:
    """Split files into tasks (big files into name slices) and pick the worker count.

    Returns (tasks, workers); workers is 1 when the input is too small for a pool.
    """
    sizes = {}
    for f in files:
        try:
            sizes[f] = os.path.getsize(f)
        except OSError:
            sizes[f] = 0
    total = sum(sizes.values())
    if workers <= 1 or total < POOL_MIN_BYTES:
        return [(f, 0, 1, deep) for f in files], 1
    chunk = max(1, total // (workers * 4))
    tasks: list[Task] = []
    for f in sorted(files, key=lambda p: -sizes[p]):  # biggest first: better balance
        n = int(min(workers * 2, max(1, -(-sizes[f] // chunk))))
        tasks.extend((f, i, n, deep) for i in range(n))
    return tasks, workers


def merge(results: Iterator[ScanResult]) -> dict[str, ScanResult]:
    """Combine the slices of each file into one ScanResult per path."""
    out: dict[str, ScanResult] = {}
    for r in results:
        cur = out.get(r.path)
        if cur is None:
            out[r.path] = r
            continue
        cur.error = cur.error or r.error
        cur.entries.update(r.entries)
        cur.problems.extend(r.problems)
        cur.attrs = cur.attrs if cur.attrs is not None else r.attrs
        cur.datasets += r.datasets
        cur.values += r.values
        cur.dtypes.update(r.dtypes)
        cur.nbytes.update(r.nbytes)
        if cur.summary is not None and r.summary is not None:
            cur.summary.merge(r.summary)
    return out
