"""pkl2h5: pack per-video pose pkls into one pose h5 (SPEC §3), in parallel, resumable after a kill.

Used by `sldata pkl2h5` and by `sldata extract-pose --h5`.

How it runs (why each piece is there):

* Worker processes read, check and *compress* the pkls (`encode_sample`: HDF5's own
  lzf filter on an in-memory file), so the expensive part scales with `--workers`;
  the one writer (this process) stores the compressed chunks as they are. Workers
  hold no handle of any output file. They are `sldata.pool`'s, two pkls handed to each
  at a time (the one it reads and the next: it never waits for the writer, and memory
  does not grow with the corpus); a pkl whose worker dies is retried once, then is that pkl's
  recorded failure (`worker-lost`), never its neighbours'.
* Resume: the writer packs into *parts*, `OUT.sldata-parts/part-NNNNNN.h5`, each a
  complete pose h5 that appears atomically (temporary name, fsync, rename) every
  `checkpoint_seconds`, with an index of the pkls it holds (path, size, mtime).
  A killed run leaves complete parts (kept) and one temporary (removed). A rerun
  keeps every part whose pkl is unchanged and packs only the rest. An HDF5 file
  being written is not crash-consistent, so the parts are what makes a kill -9 safe.
* The output appears only when complete: the largest part becomes it (moved, not
  copied), the other parts are copied in by HDF5 object copy (chunks as stored,
  bit-exact), then the parts folder is removed. A run shorter than one checkpoint
  interval copies nothing; a longer one needs free disk for the parts it copies.
* Bad pkls (code that tries to run, truncated, wrong shapes, a keypoint set other
  than the file's, unreadable files or folders, a crashed worker) are recorded
  failures (Findings, `PackReport.failures`; the pkls are found by `sldata.pkls`):
  the run goes on and exits 1. Errors of the output (disk full, a second run on the
  same output, an output that is an input) stop the run: exit 2.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import BadItemError, UnsafePickleError, UserError
from .findings import Finding, finding
from .io import TMP_MARK, output_lock, remove_stale_temporaries, remove_stale_temporaries_in, text_name
from .pkls import find_pkls, pkl_key
from .pool import Pool, WorkerLost, check_workers, default_workers
from .pose import (DEFAULT_COMPRESSION, EncodedPose, PoseH5Writer, PoseSample, check_pose_output, encode_sample,
                   keypoint_set_for, load_pkl)
from .progress import NullProgress, Progress

PARTS_SUFFIX = ".sldata-parts"
PARTS_FORMAT = 1
DTYPES = ("float32", "float16")


@dataclass
class PackReport:
    output: str
    keypoint_set: str | None = None
    dtype: str = "float32"
    packed: int = 0     # videos in the output
    resumed: int = 0    # of those, packed by an earlier (killed) run and kept
    frames: int = 0
    failures: list[Finding] = field(default_factory=list)  # file = the pkl (or folder/) relative to PKL_DIR
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, code: str, pkl: str, reason: str) -> None:
        self.failures.append(finding(code, reason, pkl))

    def to_dict(self) -> dict[str, Any]:
        """The documented --json shape: `bad` lists `{pkl, reason}`, `failed` counts them."""
        return {"output": self.output, "keypoint_set": self.keypoint_set, "dtype": self.dtype,
                "packed": self.packed, "resumed": self.resumed, "frames": self.frames,
                "bad": [{"pkl": f.file, "reason": f.message} for f in self.failures],
                "warnings": self.warnings, "failed": self.failed, "ok": self.ok}


@dataclass(frozen=True)
class PklItem:
    """One input pkl: `key` (the h5 key, valid UTF-8), `rel` (its path for messages, valid UTF-8)."""

    path: str
    key: str
    rel: str
    size: int
    mtime_ns: int


def pkl2h5(pkl_dir: str | Path, output: str | Path, *, dtype: str = "float32", workers: int | None = None,
           checkpoint_seconds: float = 60.0, progress: Progress | None = None) -> PackReport:
    """Pack every pkl under `pkl_dir` into `output` (keys = pkl stems)."""
    _check_options(dtype, workers)  # bad options first, before scanning the folder
    root = Path(pkl_dir)
    if not root.is_dir():
        raise UserError(f"{text_name(str(root))}: not a directory of pkl files")
    found = find_pkls(root)
    if not found.files and not found.unreadable:
        raise UserError(f"{text_name(str(root))}: no .pkl files found")
    unreadable = [finding("pkl-unreadable", f"cannot list folder: {exc.strerror or exc}", found.rel(d) + "/")
                  for d, exc in found.unreadable]
    return pack_pkls(found.files, output, root=root, dtype=dtype, workers=workers, progress=progress,
                     checkpoint_seconds=checkpoint_seconds, failures=unreadable)


def _check_options(dtype: str, workers: int | None) -> None:
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be float32 or float16, not {dtype!r}")
    if workers is not None:
        check_workers(workers)


def pack_pkls(pkls: Sequence[Path], output: str | Path, *, root: Path, dtype: str = "float32",
              keypoint_set: str | None = None, workers: int | None = None, checkpoint_seconds: float = 60.0,
              failures: Sequence[Finding] = (), progress: Progress | None = None,
              loader: Callable[[str], PoseSample] = load_pkl) -> PackReport:
    """Pack `pkls` (keys = stems) into `output`; `source` is the video path each pkl recorded,
    else the pkl's path relative to `root`.

    keypoint_set: the set the file holds; by default the set of most pkls.
    failures: failures found before packing (unreadable folders), reported with the rest.
    loader: reads one pkl in a worker (module-level, picklable; tests pass one that crashes).
    workers: reader processes (`sldata.pool`; default: the usable CPUs, at most 8, beyond
    which readers outrun the one writer). A pkl whose worker dies is retried once on a
    fresh worker, then recorded as that pkl's failure (`worker-lost`).
    """
    _check_options(dtype, workers)
    workers = workers or default_workers()
    output = Path(output)
    report = PackReport(text_name(str(output)), dtype=dtype, failures=list(failures))
    items = _items(pkls, Path(root), report)
    check_pose_output(output, pkls, "pkl2h5")
    progress = progress or NullProgress()
    with output_lock(output, "pose h5"):
        remove_stale_temporaries(output)  # what a killed run left (`OUTPUT.sldata-tmp-*` of dead PIDs)
        parts = _Parts(output, dtype, DEFAULT_COMPRESSION, checkpoint_seconds)
        done = parts.load(report)
        todo = [it for it in items if not _unchanged(done.get(it.key), it)]
        resumed = {it.key for it in items} - {it.key for it in todo}  # packed by an earlier run, unchanged
        keep = set(resumed)
        jobs = [(it.path, it.key, it.rel, dtype, DEFAULT_COMPRESSION, loader) for it in todo]
        by_key = {it.key: it for it in todo}
        pool = Pool(workers, name="sldata-pkl2h5-worker", ahead=2)  # workers never wait for the writer
        results = pool.imap_unordered(_encode_job, jobs)  # workers start before the progress bar's thread
        try:
            progress.start("pkl2h5", total=len(items), unit="pkls")
            progress.advance(len(items) - len(todo))
            for job, res in results:
                key, rel = job[1], job[2]
                if isinstance(res, WorkerLost):
                    report.fail("worker-lost", rel, f"{res} while reading it")
                elif isinstance(res, BaseException):  # a bug guard: the job function raised
                    report.fail("worker-lost", rel, f"worker error ({res}) while reading it")
                elif not res["ok"]:
                    report.fail(res["code"], rel, res["reason"])
                else:
                    parts.add(key, res, _entry(res, by_key[key]))
                    keep.add(key)
                progress.advance(1)
            parts.checkpoint()
        finally:
            results.close()  # on an error: stop the workers now
            parts.close_open()
            progress.finish()
            if parts.dir.is_dir() and not any(parts.dir.iterdir()):
                parts.dir.rmdir()  # nothing worth keeping for a rerun
        entries = {k: v for k, v in parts.entries.items() if k in keep}
        _choose_set(entries, keypoint_set, report)
        if not entries:
            shown = "; ".join(f"{f.file}: {f.message}" for f in report.failures[:10])
            parts.remove()
            raise UserError(f"no usable pkl among {len(items)}: {shown}")
        attrs, notes = _provenance(entries.values())
        report.warnings += notes
        report.resumed = sum(1 for k in entries if k in resumed)
        report.packed = len(entries)
        report.frames = sum(e["frames"] for e in entries.values())
        parts.merge_into(output, entries, report.keypoint_set, attrs, progress)
        parts.remove()
    report.failures.sort(key=lambda f: f.file or "")
    return report


# --- inputs ------------------------------------------------------------------------------

def _items(pkls: Sequence[Path], root: Path, report: PackReport) -> list[PklItem]:
    items: list[PklItem] = []
    by_key: dict[str, list[str]] = {}
    renamed: list[str] = []
    for p in pkls:
        rel = text_name(_rel(p, root))
        try:
            st = os.stat(p)
        except OSError as exc:
            report.fail("pkl-unreadable", rel, exc.strerror or str(exc))
            continue
        key = pkl_key(p)
        if key != p.stem:
            renamed.append(rel)
        by_key.setdefault(key, []).append(rel)
        items.append(PklItem(str(p), key, rel, st.st_size, st.st_mtime_ns))
    clashes = {s: v for s, v in by_key.items() if len(v) > 1}
    if clashes:
        lines = [f"  {s}: {', '.join(sorted(v))}" for s, v in sorted(clashes.items())][:20]
        raise UserError(f"{len(clashes)} pkl name(s) occur more than once; h5 keys are the pkl stems "
                        "and must be unique:\n" + "\n".join(lines))
    if renamed:
        report.warnings.append(f"{len(renamed)} pkl name(s) are not valid UTF-8; their keys and sources are "
                               f"written with \\xNN escapes (e.g. {renamed[0]})")
    return items


def _unchanged(entry: dict[str, Any] | None, item: PklItem) -> bool:
    return entry is not None and entry["size"] == item.size and entry["mtime_ns"] == item.mtime_ns


# --- workers -----------------------------------------------------------------------------

def _encode_job(job: tuple) -> dict[str, Any]:
    """In a worker: read one pkl, check it, compress it. Every failure comes back as a code and a reason."""
    path, key, rel, dtype, compression, loader = job
    try:
        sample = loader(path)
        f, n = sample.keypoints.shape[:2]
        kset = keypoint_set_for(n)
        if kset is None:
            raise BadItemError("pose-shape", f"{n} keypoints per frame match no keypoint set "
                                             "(openhands75: 75, holistic543: 543)")
        meta = sample.extra.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        source = meta.get("source") if isinstance(meta.get("source"), str) else rel
        enc = encode_sample(sample, dtype=dtype, compression=compression, source=source)
    except BadItemError as exc:
        return {"ok": False, "code": exc.code, "reason": _strip(str(exc), path)}
    except UnsafePickleError as exc:
        return {"ok": False, "code": "pkl-unsafe", "reason": _strip(str(exc), path)}
    except UserError as exc:
        return {"ok": False, "code": "pkl-unreadable", "reason": _strip(str(exc), path)}
    except OSError as exc:
        return {"ok": False, "code": "pkl-unreadable", "reason": exc.strerror or str(exc)}
    except MemoryError:
        return {"ok": False, "code": "pkl-unreadable", "reason": "out of memory while reading it"}
    prov = {"mediapipe_version": meta.get("mediapipe_version") if isinstance(meta.get("mediapipe_version"), str)
            else None,
            "options": json.dumps(meta["options"], sort_keys=True) if isinstance(meta.get("options"), dict)
            else None}
    return {"ok": True, "enc": enc, "kset": kset.name, "frames": f, "prov": prov}


def _entry(res: dict[str, Any], item: PklItem) -> dict[str, Any]:
    """What a part's index records of a packed pkl; size and mtime are those seen before reading it,
    so a pkl changed while the run read it is packed again by the next run."""
    return {"rel": item.rel, "size": item.size, "mtime_ns": item.mtime_ns, "kset": res["kset"],
            "frames": res["frames"], **res["prov"]}


# --- parts: the resumable state ----------------------------------------------------------

class _Parts:
    """`OUT.sldata-parts/`: complete pose h5 parts with an index each; what a rerun keeps."""

    def __init__(self, output: Path, dtype: str, compression: str | None, checkpoint_seconds: float):
        self.output = output
        self.dir = output.with_name(output.name + PARTS_SUFFIX)
        self.header = {"format": PARTS_FORMAT, "dtype": dtype, "compression": compression}
        self.checkpoint_seconds = checkpoint_seconds
        self.entries: dict[str, dict[str, Any]] = {}   # key -> entry (with "part")
        self.part_keys: dict[str, set[str]] = {}       # complete part -> every key it holds
        self._open: dict[str, tuple[PoseH5Writer, dict[str, Any]]] = {}  # kset -> (writer, index)
        self._next = 0
        self._since = time.monotonic()

    def load(self, report: PackReport) -> dict[str, dict[str, Any]]:
        """Read the parts of an earlier run; drop temporaries, unreadable parts and other options.

        A part is `part-N.h5` plus its index `part-N.json`, written first: an index
        without its h5 is a part that never completed.
        """
        import h5py

        if not self.dir.is_dir():
            return {}
        remove_stale_temporaries_in(self.dir)  # a part being written when the run was killed
        names = sorted(n for n in os.listdir(self.dir) if TMP_MARK not in n)
        for name in names:
            if name.endswith(".json") and name[:-5] + ".h5" not in names:
                _unlink(self.dir / name)
        for part in [self.dir / n for n in names if n.startswith("part-") and n.endswith(".h5")]:
            try:
                index = json.loads(part.with_suffix(".json").read_bytes())
                with h5py.File(part, "r") as f:
                    keys = set(f["keypoints"].keys()) & set(f["visibility"].keys())
            except Exception:  # cut short by a crash of the machine: its pkls are packed again
                _unlink(part)
                _unlink(part.with_suffix(".json"))
                continue
            if index.get("header") != self.header:
                report.warnings.append(f"parts of an earlier run with other options ({index.get('header')}) "
                                       "were discarded")
                self.remove()
                self.entries, self.part_keys = {}, {}
                return {}
            self.part_keys[part.name] = set(index["entries"])
            for key, e in index["entries"].items():
                if key in keys:  # a later part (a pkl packed again after it changed) wins
                    self.entries[key] = {**e, "part": part.name}
            self._next = max(self._next, int(part.stem.split("-")[1]) + 1)
        return dict(self.entries)

    def add(self, key: str, res: dict[str, Any], entry: dict[str, Any]) -> None:
        kset = res["kset"]
        if kset not in self._open:
            self.dir.mkdir(parents=True, exist_ok=True)
            part = self.dir / f"part-{self._next:06d}.h5"
            self._next += 1
            w = PoseH5Writer(part, keypoint_set=kset, dtype=self.header["dtype"],
                             compression=self.header["compression"])
            self._open[kset] = (w, {})
        w, index = self._open[kset]
        enc: EncodedPose = res["enc"]
        try:
            w.add_encoded(key, enc)
        except UserError as exc:
            raise UserError(f"{text_name(str(self.output))}: {_after_colon(str(exc))}"
                            f" (parts packed so far are kept in {text_name(str(self.dir))}; rerun to resume)") \
                from None
        index[key] = entry
        self.entries[key] = {**entry, "part": w.path.name}
        if time.monotonic() - self._since >= self.checkpoint_seconds:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Close every open part: from now on they survive a kill."""
        while self._open:
            kset, (w, index) = self._open.popitem()
            try:
                _write_index(w.path.with_suffix(".json"), {"header": self.header, "entries": index})
                w.close()
            except UserError as exc:
                for key in index:
                    self.entries.pop(key, None)
                raise UserError(f"{text_name(str(self.output))}: {_after_colon(str(exc))}"
                                f" (parts packed so far are kept in {text_name(str(self.dir))}; rerun to resume)") \
                    from None
            self.part_keys[w.path.name] = set(index)  # both files fsynced, with the folder (sldata.io)
        self._since = time.monotonic()

    def close_open(self) -> None:
        """After a failure: discard the parts being written (their pkls are packed again next time)."""
        while self._open:
            _, (w, index) = self._open.popitem()
            for key in index:
                self.entries.pop(key, None)
            w.abort()

    def merge_into(self, output: Path, entries: dict[str, dict[str, Any]], kset: str, attrs: dict[str, Any],
                   progress: Progress) -> None:
        """The output, atomically: the largest part holding only chosen keys becomes it (moved, not
        copied), the chosen keys of the other parts are copied in (chunks as stored).

        A kill from here on loses the moved part (its pkls are packed again by the rerun), never more.
        """
        import h5py

        by_part: dict[str, list[str]] = {}
        for key, e in entries.items():
            by_part.setdefault(e["part"], []).append(key)
        whole = [p for p, ks in by_part.items() if self.part_keys.get(p) == set(ks)]
        base = max(whole, key=lambda p: (len(by_part[p]), p), default=None)
        progress.start(f"pkl2h5 → {output.name}", total=len(entries), unit="videos")
        try:
            with PoseH5Writer(output, keypoint_set=kset, dtype=self.header["dtype"],
                              compression=self.header["compression"], root_attrs=attrs,
                              start_from=self.dir / base if base else None) as w:
                progress.advance(len(by_part.pop(base, [])))
                for part in sorted(by_part):
                    with h5py.File(self.dir / part, "r") as src:
                        for i, key in enumerate(sorted(by_part[part])):
                            w.copy_from(src, key, flush=(i % 256 == 255), check=False)
                            progress.advance(1)
        finally:
            progress.finish()

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def _choose_set(entries: dict[str, dict[str, Any]], wanted: str | None, report: PackReport) -> None:
    """Keep the keys of one keypoint set (the wanted one, else the most common); the rest are failures."""
    counts = Counter(e["kset"] for e in entries.values())
    if not counts:
        return
    kset = wanted or max(sorted(counts), key=lambda k: counts[k])
    report.keypoint_set = kset
    from .pose import KEYPOINT_SETS

    for key in [k for k, e in entries.items() if e["kset"] != kset]:
        e = entries.pop(key)
        n = KEYPOINT_SETS[e["kset"]].num_keypoints
        report.fail("pose-shape", e["rel"], f"mixed keypoint sets: {e['kset']} ({n} keypoints) in a file of {kset}")


def _provenance(entries: Any) -> tuple[dict[str, Any], list[str]]:
    """What the pkls recorded about their extraction; the root attributes say it once."""
    entries = list(entries)
    mediapipe = {e["mediapipe_version"] for e in entries if e.get("mediapipe_version")}
    options = {e["options"] for e in entries if e.get("options")}
    with_options = sum(1 for e in entries if e.get("options"))
    attrs: dict[str, Any] = {}
    warnings: list[str] = []
    if mediapipe:
        attrs["mediapipe_version"] = ", ".join(sorted(mediapipe))
        if len(mediapipe) > 1:
            warnings.append(f"pkls come from several MediaPipe versions: {attrs['mediapipe_version']}")
    if len(options) == 1 and with_options == len(entries):
        attrs["extraction_options"] = next(iter(options))
    elif options:
        warnings.append("pkls were extracted with different options; extraction_options not recorded")
    attrs["sldata_command"] = "pkl2h5"  # whose output this is (check_pose_output)
    return attrs, warnings


# --- small helpers -----------------------------------------------------------------------

def _rel(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def _strip(message: str, pkl: str) -> str:
    """Library messages start with the path; the report already names the pkl."""
    prefix = f"{pkl}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _after_colon(message: str) -> str:
    """`PART: cannot write: X` -> `cannot write: X` (the user knows the output, not the part)."""
    head, sep, tail = message.partition(": ")
    return tail if sep and head.endswith(".h5") else message


def _write_index(path: Path, index: dict[str, Any]) -> None:
    from .io import write_bytes_atomic

    write_bytes_atomic(path, json.dumps(index).encode())


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
