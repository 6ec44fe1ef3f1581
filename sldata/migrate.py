"""Migration between Sign_LLaVA layouts (SPEC §2.3): annotation upgrade and (re-)sharding.

`shard` runs plan → copy → verify → rename: the whole v2 dataset is staged in a
temporary directory beside DST (its name carries `.sldata-tmp-`, so readers
ignore it), copied video group by video group at the HDF5 level (bytes, dtypes,
attributes, chunking and filters survive) or, where a source file is exactly one
planned shard, as a file by the kernel; then checked against the source by
reading headers only, fsynced, and renamed into place only when the check passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from schemas.annotations import AnnotationV2, format_errors, is_int_key, sort_clip_keys

from .errors import UserError
from .features import (FeatureDataset, RepWriter, annotation_path, is_feature_dataset_dir, metadata_path,
                       shard_path)
from .findings import Finding, finding
from .io import (TMP_MARK, atomic_path, dumps_json, fsync_path, read_json, remove_stale_temporaries,
                 write_bytes_atomic, write_json)
from .progress import NullProgress, Progress

# --- annotation upgrade --------------------------------------------------------------


@dataclass
class UpgradeReport:
    """What `upgrade_annotation` did: enough for a one-screen summary or --json."""

    version_in: int
    videos: int = 0
    clips: int = 0
    upgraded_videos: int = 0  # v1 videos given a clip_order (0 on v2 input: a no-op)
    nonnumeric: dict[str, list[str]] = field(default_factory=dict)  # video -> non-integer keys
    input: str | None = None
    output: str | None = None

    @property
    def changed(self) -> bool:
        return self.upgraded_videos > 0

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "version_in": self.version_in,
                "version_out": 2, "changed": self.changed, "videos": self.videos, "clips": self.clips,
                "upgraded_videos": self.upgraded_videos,
                "nonnumeric_clip_keys": self.nonnumeric}


def _located(where: str, messages: list[str]) -> UserError:
    return UserError(f"{where}: schema error:\n  " + "\n  ".join(messages))


def upgrade_annotation(raw: Any, where: str = "<annotation>") -> tuple[dict[str, Any], UpgradeReport]:
    """v1 → v2: add `clip_order` (numeric, natural for non-integer keys) to every v1 video.

    Clip entries are the parsed dicts themselves (extra fields and their order kept);
    videos keep their order; a v2 video passes through untouched, so the upgrade is
    idempotent. A file mixing v1 and v2 videos (a half-done hand edit) is completed.
    Raises UserError with the located problem for anything that is not an annotation.
    """
    if not isinstance(raw, dict):
        raise _located(where, [f"<root>: expected an object of videos, got {type(raw).__name__}"])
    out: dict[str, Any] = {}
    report = UpgradeReport(version_in=1)
    problems: list[str] = []
    for video, entry in raw.items():
        if not isinstance(entry, dict):
            problems.append(f"{video}: expected an object of clips, got {type(entry).__name__}")
            continue
        if "clip_order" in entry:
            report.version_in = 2
            order = entry["clip_order"]
            keys = [k for k in entry if k != "clip_order"]
            if not isinstance(order, list) or sorted(map(str, order)) != sorted(keys) or len(set(map(str, order))) != len(order):
                problems.append(f"{video}.clip_order: does not list exactly the clip keys {keys}")
            out[video] = entry
        else:
            keys = list(entry.keys())
            odd = [k for k in keys if not is_int_key(k)]
            if odd:
                report.nonnumeric[video] = odd
            out[video] = {"clip_order": sort_clip_keys(keys), **entry}
            report.upgraded_videos += 1
        report.clips += len(entry) - ("clip_order" in entry)
    report.videos = len(raw)
    if problems:
        raise _located(where, problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []))
    from pydantic import ValidationError

    try:
        AnnotationV2.model_validate(out)
    except ValidationError as exc:
        raise _located(where, format_errors(exc)) from None
    return out, report


def annotation_bytes(annotation: dict[str, Any]) -> bytes:
    """Serialised annotation; bare NaN texts stay NaN (see `sldata.io.dumps_json`)."""
    return dumps_json(annotation) + b"\n"


def default_upgrade_output(path: Path) -> Path:
    """`annotation.train.json` → `annotation.train.v2.json` (not detected as a split)."""
    return path.with_name(f"{path.stem}.v2{path.suffix or '.json'}")


def upgrade_annotation_file(src: str | Path, out: str | Path | None = None,
                            overwrite: bool = False) -> UpgradeReport:
    """Upgrade one annotation file into `out` (default: beside it, `.v2.json`), atomically."""
    src = Path(src)
    if src.is_dir():  # before naming the default output: `.` has no name to derive one from
        raise UserError(f"{src}: is a directory, expected a JSON file")
    out = Path(out) if out is not None else default_upgrade_output(src)
    if out.resolve() == src.resolve():
        raise UserError(f"{out}: refusing to write over the input (pick another -o)")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists (use --overwrite to replace it)")
    if out.exists() and out.is_dir():
        raise UserError(f"{out} is a directory")
    new, report = upgrade_annotation(read_json(src), where=str(src))
    write_bytes_atomic(out, annotation_bytes(new))
    report.input, report.output = str(src), str(out)
    return report


# --- shard: plan -----------------------------------------------------------------------


@dataclass
class RepPlan:
    """One (rep, split) of the result: the videos of each shard, in annotation order."""

    rep: str
    split: str
    shards: list[list[str]]
    bytes: int
    clips: int
    #: video -> (bytes on disk, hash of its header signature), for progress and verification
    scanned: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    #: source files that are exactly the planned shards (copied as files), or None
    whole_files: list[Path] | None = field(default=None, repr=False)
    inspected: bool = field(default=False, repr=False)

    @property
    def videos(self) -> int:
        return sum(len(s) for s in self.shards)

    def to_dict(self) -> dict[str, Any]:
        return {"rep": self.rep, "split": self.split, "shards": len(self.shards),
                "videos_per_shard": [len(s) for s in self.shards], "videos": self.videos,
                "clips": self.clips, "bytes": self.bytes, "file_copy": self.whole_files is not None}


@dataclass
class ShardPlan:
    src: Path
    dst: Path
    size: int
    src_layout: str
    splits: list[str]
    reps: list[str]
    compression: str | None  # None: keep the source's
    compression_opts: Any
    items: list[RepPlan] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    annotations: dict[str, UpgradeReport] = field(default_factory=dict)
    upgraded: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _annotation_bytes: dict[str, bytes] = field(default_factory=dict, repr=False)

    def annotation_bytes(self, split: str) -> bytes:
        """The serialised upgraded annotation of `split` (computed once: written, then compared)."""
        if split not in self._annotation_bytes:
            self._annotation_bytes[split] = annotation_bytes(self.upgraded[split])
        return self._annotation_bytes[split]

    @property
    def total_bytes(self) -> int:
        return sum(i.bytes for i in self.items)

    @property
    def problems(self) -> list[Finding]:
        """Findings that --strict turns into a failure (annotated data absent)."""
        return [f for f in self.findings if f.code in ("video-missing", "clip-missing", "missing-file")]

    def to_dict(self) -> dict[str, Any]:
        return {"src": str(self.src), "dst": str(self.dst), "size": self.size,
                "src_layout": self.src_layout, "splits": self.splits, "reps": self.reps,
                "compression": self.compression or "keep", "bytes": self.total_bytes,
                "items": [i.to_dict() for i in self.items],
                "findings": [f.to_dict() for f in self.findings],
                "nonnumeric_clip_keys": {s: r.nonnumeric for s, r in self.annotations.items() if r.nonnumeric}}


def default_dst(src: str | Path) -> Path:
    """`mock_data` or `mock_data/` → `mock_data_multi`."""
    s = str(src).rstrip("/\\") or "."
    p = Path(s)
    if p.name in ("", ".", ".."):
        p = p.resolve()
    return p.with_name(f"{p.name}_multi")


def parse_compression(value: str | None) -> tuple[str | None, Any]:
    """`None`/`keep` → keep the source's; `none`, `lzf`, `gzip` or `gzip:LEVEL` → recompress."""
    if value is None or value == "keep":
        return None, None
    m = re.fullmatch(r"(none|lzf|gzip)(?::(\d))?", value)
    if not m or (m.group(2) and m.group(1) != "gzip"):
        raise UserError(f"--compression must be keep, none, lzf, gzip or gzip:0-9, not {value!r}")
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def _open_h5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot open as HDF5 ({exc})") from None


class _Source:
    """Where each video of one (rep, split) lives in the source: {video: file}.

    Handles come from a small LRU pool, so a source of thousands of shards never
    holds more than a few dozen files open.
    """

    def __init__(self, ds: FeatureDataset, rep: str, split: str):
        from .h5 import H5Pool

        lay = ds.layout
        self.files: list[Path] = ([lay.v1_files[(rep, split)]] if (rep, split) in lay.v1_files
                                  else list(lay.shards.get((rep, split), {}).values()))
        self.where: dict[str, Path] = {}
        self._pool = H5Pool(max_open=32)
        try:
            for path in self.files:
                for video in self.file(path).keys():
                    if video in self.where:
                        raise UserError(f"{ds.root}: video {video!r} of rep {rep!r} split {split!r} is in both "
                                        f"{self.where[video].name} and {path.name}; run `sldata validate` and fix "
                                        "the source")
                    self.where[video] = path
        except BaseException:
            self.close()
            raise

    def file(self, path: Path):
        try:
            return self._pool.get(path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot open as HDF5 ({exc})") from None

    def group(self, video: str):
        return self.file(self.where[video])[video]

    def close(self) -> None:
        self._pool.close()


def _scan(parent_id: Any, video: str, where: str, with_bytes: bool = True) -> tuple[int, tuple]:
    """(bytes on disk, header signature) of one video group: clip names, shapes, dtypes.

    Goes through h5py's low-level API (and compares HDF5 type class and size rather
    than building numpy dtypes), several times cheaper per object than the
    high-level one: scans visit every dataset header of a corpus. No array data is read.
    """
    from h5py import h5d, h5o

    total, sig = 0, []
    try:
        gid = h5o.open(parent_id, video.encode())
        if isinstance(gid, h5d.DatasetID):
            raise UserError(f"{where}: expected a group (video), found a dataset; run `sldata validate`")
        for raw in gid:
            obj = h5o.open(gid, raw)
            if isinstance(obj, h5d.DatasetID):
                if with_bytes:
                    total += obj.get_storage_size()
                tid = obj.get_type()
                sig.append((raw.decode(), obj.shape, tid.get_class(), tid.get_size()))
            else:
                sig.append((raw.decode(), "not a dataset"))
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"{where}: unreadable HDF5 object ({exc})") from None
    return total, tuple(sig)


def _digest(sig: tuple) -> int:
    """A hash of a header signature that is the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(repr(sig).encode(), digest_size=8).digest(), "little")


def plan_shard(src: str | Path, dst: str | Path | None = None, size: int = 1000,
               reps: list[str] | None = None, splits: list[str] | None = None,
               compression: str | None = None, scan: bool = True) -> ShardPlan:
    """Decide the result without writing anything: shards, videos per shard, bytes, problems.

    Video membership (root listings, cheap) fixes the shards; `scan` then reads
    clip names (and, for shards copied as objects, every dataset header) for clip
    counts, `clip-missing`, bytes and the signatures verification compares.
    `shard` plans with `scan=False` and inspects while its file copies run.
    """
    src = Path(src)
    if size < 1:
        raise UserError(f"--size must be >= 1, not {size}")
    if not src.exists():
        raise UserError(f"{src}: no such dataset directory")
    dst = Path(dst) if dst is not None else default_dst(src)
    _check_paths(src, dst)
    comp, opts = parse_compression(compression)
    ds = FeatureDataset(src)
    try:
        plan = ShardPlan(src=src, dst=dst, size=size, src_layout=ds.kind,
                         splits=_select(splits, ds.splits, "split", src),
                         reps=_select(reps, ds.reps, "rep", src), compression=comp, compression_opts=opts)
        if not plan.splits:
            raise UserError(f"{src}: no annotation.SPLIT.json files")
        if not plan.reps:
            raise UserError(f"{src}: no feature files (REP.SPLIT.h5 or REP/REP.SPLIT.K.h5)")
        for split in plan.splits:
            raw = read_json(annotation_path(src, split))
            upgraded, report = upgrade_annotation(raw, where=str(annotation_path(src, split)))
            plan.annotations[split] = report
            plan.upgraded[split] = upgraded
            for rep in plan.reps:
                plan.items.append(_plan_rep(ds, plan, upgraded, rep, split))
        if scan:
            _inspect_items(ds, plan)
        for (rep, split) in sorted(set(ds.layout.v1_files) | set(ds.layout.shards)):
            if rep in plan.reps and split not in ds.splits:
                plan.findings.append(finding("extra-file", f"{rep} has files for split {split!r}, which has "
                                             "no annotation: not copied", src, rep=rep))
    finally:
        ds.close()
    return plan


def _select(wanted: list[str] | None, have: list[str], what: str, src: Path) -> list[str]:
    if not wanted:
        return list(have)
    unknown = [w for w in wanted if w not in have]
    if unknown:
        raise UserError(f"{src}: no {what} {', '.join(map(repr, unknown))} (have: {', '.join(have) or 'none'})")
    return list(dict.fromkeys(wanted))


def _check_paths(src: Path, dst: Path) -> None:
    s, d = src.resolve(), dst.resolve()
    if s == d or s in d.parents or d in s.parents:
        raise UserError(f"DST {dst} must not be SRC {src}, inside it, or contain it")


def _names(parent_id: Any, video: str, where: str) -> set[str]:
    """The clip names of one video group (links only: no dataset header is opened)."""
    from h5py import h5d, h5o

    try:
        gid = h5o.open(parent_id, video.encode())
        if isinstance(gid, h5d.DatasetID):
            raise UserError(f"{where}: expected a group (video), found a dataset; run `sldata validate`")
        return {raw.decode() for raw in gid}
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise UserError(f"{where}: unreadable HDF5 group ({exc})") from None


def _plan_rep(ds: FeatureDataset, plan: ShardPlan, ann: dict[str, Any], rep: str, split: str) -> RepPlan:
    source = _Source(ds, rep, split)
    try:
        present: list[str] = []
        fname = str(source.files[0]) if len(source.files) == 1 else str(ds.root / rep)
        if not source.files:
            plan.findings.append(finding("missing-file", f"no {rep} file for split {split!r}", ds.root,
                                         rep=rep))
        for video, entry in ann.items():
            if video not in source.where:
                if source.files:
                    plan.findings.append(finding("video-missing", f"video absent from rep {rep} ({split}): "
                                                 "not in the result's shards either", fname, video=video, rep=rep))
                continue
            present.append(video)
        if ds.kind == "v2" and source.files:
            plan.findings.extend(_source_metadata_findings(ds, source, rep, split))
        for video in source.where:
            if video not in ann:
                plan.findings.append(finding("extra-video", f"rep {rep} ({split}) holds a video the annotation "
                                             "does not list: not copied", source.where[video], video=video, rep=rep))
        shards = [present[i:i + plan.size] for i in range(0, len(present), plan.size)]
        item = RepPlan(rep=rep, split=split, shards=shards, bytes=0, clips=0)
        item.whole_files = _whole_files(source, item, plan)
        if item.whole_files is not None:
            item.bytes = sum(p.stat().st_size for p in item.whole_files)
        return item
    finally:
        source.close()


def _inspect_items(ds: FeatureDataset, plan: ShardPlan) -> None:
    """Clip counts and `clip-missing` for every planned video, plus what copying needs.

    Items copied as whole files need only their clip names (links, cheap): their
    bytes are the files' sizes and they are checked as byte copies. Items copied
    as objects get every dataset header read once: bytes for the progress bar and
    the signature (names, shapes, dtypes) that verification compares.
    """
    for item in plan.items:
        if item.inspected:
            continue
        source = _Source(ds, item.rep, item.split)
        ann = plan.upgraded[item.split]
        try:
            item.clips = 0
            if item.whole_files is None:
                item.bytes = 0
            for videos in item.shards:
                for video in videos:
                    path = source.where[video]
                    where = f"{path}:/{video}"
                    if item.whole_files is None:
                        b, sig = _scan(source.file(path).id, video, where)
                        item.scanned[video] = (b, _digest(sig))
                        item.bytes += b
                        names = {entry[0] for entry in sig}
                    else:
                        names = _names(source.file(path).id, video, where)
                    for clip in ann[video]["clip_order"]:
                        if clip not in names:
                            plan.findings.append(finding("clip-missing", f"clip absent from rep {item.rep} "
                                                         f"({item.split})", path, video=video, clip=clip,
                                                         rep=item.rep))
                    item.clips += len(names)
            item.inspected = True
        finally:
            source.close()


def _source_metadata_findings(ds: FeatureDataset, source: _Source, rep: str, split: str) -> list[Finding]:
    """Where a v2 source's metadata disagrees with its shards' contents (the result follows the contents)."""
    from schemas.metadata import parse_metadata

    path = ds.layout.metadata.get((rep, split))
    if path is None:
        return [finding("missing-file", f"no metadata_{rep}.{split}.json: shards are read by their contents",
                        ds.root / rep, rep=rep)]
    try:
        mapping, errors = parse_metadata(read_json(path))
    except UserError as exc:
        return [finding("json-invalid", f"{exc}; shards are read by their contents", path, rep=rep)]
    if errors:
        return [finding("schema", "; ".join(errors[:3]), path, rep=rep)]
    index = {p: k for k, p in ds.layout.shards.get((rep, split), {}).items()}
    out = []
    for video, k in mapping.items():
        actual = source.where.get(video)
        if actual is None or index.get(actual) != k:
            where = "no shard" if actual is None else f"shard {index.get(actual)}"
            out.append(finding("metadata-mismatch", f"metadata says shard {k}, {where} holds it", path,
                               video=video, rep=rep))
    for video, actual in source.where.items():
        if video not in mapping:
            out.append(finding("metadata-mismatch", f"shard {index.get(actual)} holds it, metadata does not "
                               "list it", path, video=video, rep=rep))
    return out


# --- shard: copy, verify, rename ----------------------------------------------------------


@dataclass
class ShardResult:
    plan: ShardPlan
    written: bool
    removed_stale: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.plan.to_dict(), "written": self.written, "verified": self.written,
                "removed_stale": self.removed_stale}


class VerificationError(UserError):
    """The staged result does not match the source; nothing was renamed into place."""


def shard(src: str | Path, dst: str | Path | None = None, size: int = 1000, *,
          reps: list[str] | None = None, splits: list[str] | None = None,
          compression: str | None = None, overwrite: bool = False, strict: bool = False,
          dry_run: bool = False, progress: Progress | None = None) -> ShardResult:
    """v1 or v2 dataset → v2 with `size` videos per shard: plan → copy → verify → rename.

    With `strict`, annotated videos or clips absent from a rep stop the run before
    anything is written (the result has `written=False` and the problems in its plan).
    """
    plan = plan_shard(src, dst, size, reps=reps, splits=splits, compression=compression, scan=dry_run)
    dst = plan.dst
    if dst.exists() and not dst.is_dir():
        raise UserError(f"{dst} exists and is not a directory (DST is the output dataset directory)")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise UserError(f"{dst} exists and is not empty (use --overwrite to replace it)")
    if strict and not dry_run:
        with FeatureDataset(plan.src) as ds:
            _inspect_items(ds, plan)  # the problems decide whether anything is written
    if dry_run or (strict and plan.problems):
        return ShardResult(plan, written=False)
    from concurrent.futures import ThreadPoolExecutor

    removed = remove_stale_temporaries(dst)
    progress = progress or NullProgress()
    ds = FeatureDataset(plan.src)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sldata-copy")  # one copies, one syncs
    try:
        with atomic_path(dst, kind="dir", overwrite=overwrite, owned=is_feature_dataset_dir,
                         inputs=[plan.src]) as tmp:
            tmp.mkdir()
            try:
                copies = {id(i): _start_file_copies(pool, i, tmp) for i in plan.items if i.whole_files}
                _inspect_items(ds, plan)  # while the file copies run (done already under --strict)
                progress.start(f"shard → {dst.name}", total=plan.total_bytes, unit="bytes")
                problems: list[str] = []
                syncs: list[Any] = []
                for item in plan.items:
                    if id(item) in copies:
                        for path, fut in zip(item.whole_files or [], copies[id(item)]):
                            fut.result()
                            progress.advance(path.stat().st_size)
                    else:
                        _copy_objects(ds, plan, item, tmp, progress)
                        # flushed in the background while the next item is copied
                        syncs += [pool.submit(fsync_path, shard_path(tmp, item.rep, item.split, k))
                                  for k in range(len(item.shards))]
                    problems += _verify_item(item, tmp)
                for split in plan.splits:
                    write_bytes_atomic(annotation_path(tmp, split), plan.annotation_bytes(split))
                problems += _verify_annotations(plan, tmp)
                if problems:
                    raise VerificationError("verification failed, nothing renamed into place:\n  "
                                            + "\n  ".join(problems[:20]))
                for fut in syncs:
                    fut.result()
            finally:  # no copy may outlive the temporary
                pool.shutdown(wait=True, cancel_futures=True)
    finally:
        ds.close()
        progress.finish()
    return ShardResult(plan, written=True, removed_stale=[str(p) for p in removed])


def _copy_and_sync(src: Path, dst: Path) -> None:
    """Copy a file and flush it, in the copy thread: its write-back overlaps the next copy."""
    shutil.copyfile(src, dst)
    fsync_path(dst)


def _whole_files(source: _Source, item: RepPlan, plan: ShardPlan) -> list[Path] | None:
    """Source files that are exactly the planned shards (same videos, nothing else), or None.

    Then a byte copy of each file is the bit-exact result, and much cheaper than
    copying its objects: v2 → v2 at the same size, or a split that fits in one shard.
    """
    if plan.compression is not None:
        return None
    files = []
    for videos in item.shards:
        path = source.where[videos[0]]
        if any(source.where[v] != path for v in videos) or \
                sum(1 for p in source.where.values() if p == path) != len(videos):
            return None
        files.append(path)
    return files if len(set(files)) == len(files) else None


def _copy_objects(ds: FeatureDataset, plan: ShardPlan, item: RepPlan, tmp: Path, progress: Progress) -> None:
    """Copy one (rep, split) video group by video group into its shards (+ metadata)."""
    source = _Source(ds, item.rep, item.split)
    writer = RepWriter(tmp, item.rep, item.split, "v2", shard_size=plan.size,
                       compression=plan.compression, compression_opts=plan.compression_opts)
    try:
        for videos in item.shards:
            for video in videos:
                writer.copy_video(video, source.group(video))
                progress.advance(item.scanned[video][0])
    finally:
        writer.close()  # also writes the metadata file ({} for a rep without any of the videos)
        source.close()


def _start_file_copies(pool: Any, item: RepPlan, tmp: Path) -> list[Any]:
    """Byte copies of the source files that are whole shards, in a background thread.

    `shutil.copyfile` uses the kernel's copy (copy_file_range/sendfile) and releases
    the GIL, so the header scan and verification run meanwhile.
    """
    assert item.whole_files is not None
    futures = []
    for k, path in enumerate(item.whole_files):
        out = shard_path(tmp, item.rep, item.split, k)
        out.parent.mkdir(parents=True, exist_ok=True)
        futures.append(pool.submit(_copy_and_sync, path, out))
    metadata_path(tmp, item.rep, item.split).parent.mkdir(parents=True, exist_ok=True)
    write_json(metadata_path(tmp, item.rep, item.split),
               {v: k for k, videos in enumerate(item.shards) for v in videos})
    return futures


def _verify_annotations(plan: ShardPlan, root: Path) -> list[str]:
    problems = []
    for split in plan.splits:
        path = annotation_path(root, split)
        if not path.exists() or path.read_bytes() != plan.annotation_bytes(split):
            problems.append(f"{path.name}: missing or not the upgraded source annotation")
    return problems


def _verify_item(item: RepPlan, root: Path) -> list[str]:
    """Problems of one (rep, split) of the staged result, by headers only.

    Object copies: every clip's shape and dtype against the source's (signature
    hash). Byte copies of whole files: the size and the videos (a byte copy of the
    right length is the source's bytes, headers included).
    """
    problems: list[str] = []
    meta_file = metadata_path(root, item.rep, item.split)
    meta = read_json(meta_file) if meta_file.exists() else None
    expected = {v: k for k, videos in enumerate(item.shards) for v in videos}
    if meta != expected:
        return [f"{item.rep}/{meta_file.name}: missing or differs from the plan"]
    for k, videos in enumerate(item.shards):
        path = shard_path(root, item.rep, item.split, k)
        if item.whole_files is not None and path.stat().st_size != item.whole_files[k].stat().st_size:
            problems.append(f"{path.name}: size differs from its source {item.whole_files[k].name}")
            continue
        with _open_h5(path) as f:
            if len(f) != len(videos) or set(f.keys()) != set(videos):
                problems.append(f"{path.name}: holds {len(f)} videos, planned {len(videos)}")
                continue
            if item.whole_files is not None:
                continue  # a byte copy of the right size holding the right videos
            for video in videos:
                _, sig = _scan(f.id, video, f"{path}:/{video}", with_bytes=False)
                if _digest(sig) != item.scanned[video][1]:
                    problems.append(f"{path.name}:/{video}: clips, shapes or dtypes differ from the source")
    extra = shard_path(root, item.rep, item.split, len(item.shards))
    if extra.exists():
        problems.append(f"{extra.name}: a shard beyond the plan")
    return problems


def verify_shards(plan: ShardPlan, root: Path) -> None:
    """Check a staged (or finished) result against a scanned plan; raise VerificationError if off.

    Each split's annotation is the upgraded source annotation; each rep's metadata
    names, for every planned video, the one shard that holds it; no shard holds
    anything else; every video has the source's clips with the same shapes and
    dtypes (compared through the signature hash taken from the source headers).
    """
    problems = _verify_annotations(plan, root)
    for item in plan.items:
        problems += _verify_item(item, root)
    if problems:
        raise VerificationError("verification failed, nothing renamed into place:\n  " + "\n  ".join(problems[:20]))


def iter_problem_lines(plan: ShardPlan, limit: int = 10) -> Iterator[str]:
    """Human lines for the summary, at most `limit` per finding code."""
    seen: dict[str, int] = {}
    for f in plan.findings:
        seen[f.code] = seen.get(f.code, 0) + 1
        if seen[f.code] <= limit:
            parts = [p for p in (f.rep and f"rep={f.rep}", f.video and f"video={f.video}",
                                 f.clip and f"clip={f.clip}") if p]
            yield f"{f.code}: {' '.join(parts)} {f.message}".replace("  ", " ")
    for code, n in seen.items():
        if n > limit:
            yield f"{code}: ... and {n - limit} more (see --json)"


__all__ = ["upgrade_annotation", "upgrade_annotation_file", "default_upgrade_output", "UpgradeReport",
           "plan_shard", "shard", "verify_shards", "ShardPlan", "RepPlan", "ShardResult",
           "VerificationError", "default_dst", "parse_compression", "remove_stale_temporaries"]
