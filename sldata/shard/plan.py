"""shard's plan: which videos go to which shard file, decided here once, from one scan of the source.

The copy step writes exactly these shard files with exactly these videos, and the
verification checks the staged result against this plan; nothing downstream
re-decides a boundary. The source is read through `sldata.scan` (the walker
validate and stats use): clip names only (links, cheap) decide everything. The
dataset headers of shards copied object by object (bytes, and a signature of
clip names, shapes and dtypes that verification compares) are read by
`read_headers` for a dry run, and during a real run by the copy workers, in
parallel with the copying.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..features import FeatureDataset, annotation_path
from ..findings import Finding, finding
from ..io import DuplicateKeyError, text_name
from ..pool import default_workers
from ..scan import ScanResult, merge, run_tasks, scan_feature_file
from ..upgrade import UpgradeReport, annotation_bytes, read_annotation, upgrade_annotation


@dataclass
class RepPlan:
    """One (rep, split) of the result: the videos of each shard, in annotation order."""

    rep: str
    split: str
    shards: list[list[str]]
    bytes: int
    clips: int
    #: video -> the source file it is copied from
    sources: dict[str, Path] = field(default_factory=dict, repr=False)
    #: video -> (bytes on disk, hash of its header signature), for --json and verification
    scanned: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    #: per shard, about how many bytes it will take (source file sizes pro rata): the progress bar's
    estimate: list[int] = field(default_factory=list, repr=False)
    #: source files that are exactly the planned shards (copied as files), or None
    whole_files: list[Path] | None = field(default=None, repr=False)

    @property
    def videos(self) -> int:
        return sum(len(s) for s in self.shards)

    def assignment(self) -> dict[str, int]:
        """{video: shard}: the metadata file of this (rep, split)."""
        return {v: k for k, videos in enumerate(self.shards) for v in videos}

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


def open_error(path: Path, exc: BaseException) -> Exception:
    """An environment error (permission, I/O) as the OSError it is (exit 2, one line), else a UserError."""
    from ..h5 import h5_os_error, open_failure

    err = h5_os_error(exc)
    if isinstance(err, OSError) and err.errno:
        return OSError(err.errno, err.strerror, str(path))
    return UserError(f"{text_name(path)}: cannot open: {open_failure(exc)}")


def signature(scan: ScanResult, video: str) -> int:
    """A hash of one video's clip names, shapes and dtypes, the same in every process (unlike `hash`)."""
    dtypes = scan.dtypes.get(video, {})
    sig = tuple((clip, shape, dtypes.get(clip)) for clip, shape in scan.entries.get(video, {}).items())
    return int.from_bytes(hashlib.blake2b(repr(sig).encode(), digest_size=8).digest(), "little")


#: Below this many files a names-only pass is quicker in this process than a pool's start.
NAMES_POOL_MIN_FILES = 64


def scan_files(files: list[Path], facts: bool, workers: int | None = None) -> dict[str, ScanResult]:
    """One `sldata.scan` pass over whole files (clip names only, or every header with `facts`), pooled."""
    tasks = [(str(p), 0, 1, False, facts, False, not facts) for p in files]
    n = workers or default_workers()
    small = len(tasks) < 2 or (not facts and len(tasks) < NAMES_POOL_MIN_FILES)
    return merge(run_tasks(scan_feature_file, tasks, 1 if small else n))


def readable(path: Path, scan: ScanResult) -> ScanResult:
    """The scan of a source file, or the error that stops the run (the source must be readable whole)."""
    if scan.error:
        import h5py

        try:  # again, in this process, for the errno (permission denied: exit 2, one line)
            h5py.File(path, "r").close()
        except (OSError, ValueError) as exc:
            raise open_error(path, exc) from None
        raise UserError(f"{text_name(path)}: {scan.error}")
    for code, video, clip, msg in scan.problems:
        if code == "h5-unreadable" or (code == "h5-structure" and clip is None):
            where = f"{text_name(path)}:/{video}" + (f"/{clip}" if clip is not None else "")
            raise UserError(f"{where}: {msg}; run `sldata validate`")
    return scan


def plan_shard(src: str | Path, dst: str | Path | None = None, size: int = 1000,
               reps: list[str] | None = None, splits: list[str] | None = None,
               compression: str | None = None, headers: bool = True) -> ShardPlan:
    """Decide the result without writing anything: shards, videos per shard, bytes, problems.

    `headers`: also read the dataset headers of shards copied as objects (bytes
    and signatures); `shard` leaves that to its copy workers.
    """
    src = Path(src)
    if size < 1:
        raise UserError(f"--size must be >= 1, not {size}")
    if not src.exists():
        raise UserError(f"{src}: no such dataset directory")
    dst = Path(dst) if dst is not None else default_dst(src)
    _check_paths(src, dst)
    comp, opts = parse_compression(compression)
    ds = FeatureDataset(src)  # the layout only: no HDF5 file is opened in this process
    lay = ds.layout
    plan = ShardPlan(src=src, dst=dst, size=size, src_layout=ds.kind,
                     splits=_select(splits, ds.splits, "split", src),
                     reps=_select(reps, ds.reps, "rep", src), compression=comp, compression_opts=opts)
    if not plan.splits:
        raise UserError(f"{src}: no annotation.SPLIT.json files")
    if not plan.reps:
        raise UserError(f"{src}: no feature files (REP.SPLIT.h5 or REP/REP.SPLIT.K.h5)")
    for split in plan.splits:
        raw = read_annotation(annotation_path(src, split))
        plan.upgraded[split], plan.annotations[split] = upgrade_annotation(raw, where=str(annotation_path(src, split)))
    files = {(rep, split): _files(lay, rep, split) for split in plan.splits for rep in plan.reps}
    names = scan_files([p for fs in files.values() for p in fs], facts=False)
    for split in plan.splits:
        for rep in plan.reps:
            plan.items.append(_plan_rep(ds, plan, rep, split, files[(rep, split)], names))
    _inspect(plan, names)
    if headers:
        read_headers(plan)
    for (rep, split) in sorted(set(lay.v1_files) | set(lay.shards)):
        if rep in plan.reps and split not in ds.splits:
            plan.findings.append(finding("extra-file", f"{rep} has files for split {split!r}, which has "
                                         "no annotation: not copied", src, rep=rep))
    return plan


def _files(lay: Any, rep: str, split: str) -> list[Path]:
    return ([lay.v1_files[(rep, split)]] if (rep, split) in lay.v1_files
            else list(lay.shards.get((rep, split), {}).values()))


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


def _where(ds: FeatureDataset, rep: str, split: str, files: list[Path],
           names: dict[str, ScanResult]) -> dict[str, Path]:
    """{video: the source file holding it}; a video in two files of one (rep, split) stops the run."""
    where: dict[str, Path] = {}
    for path in files:
        for video in readable(path, names[str(path)]).entries:
            if video in where:
                raise UserError(f"{ds.root}: video {video!r} of rep {rep!r} split {split!r} is in both "
                                f"{where[video].name} and {path.name}; run `sldata validate` and fix the source")
            where[video] = path
    return where


def _plan_rep(ds: FeatureDataset, plan: ShardPlan, rep: str, split: str, files: list[Path],
              names: dict[str, ScanResult]) -> RepPlan:
    ann = plan.upgraded[split]
    where = _where(ds, rep, split, files, names)
    present: list[str] = []
    fname = str(files[0]) if len(files) == 1 else str(ds.root / rep)
    if not files:
        plan.findings.append(finding("missing-file", f"no {rep} file for split {split!r}", ds.root, rep=rep))
    for video in ann:
        if video not in where:
            if files:
                plan.findings.append(finding("video-missing", f"video absent from rep {rep} ({split}): "
                                             "not in the result's shards either", fname, video=video, rep=rep))
            continue
        present.append(video)
    if ds.kind == "v2" and files:
        plan.findings.extend(_source_metadata_findings(ds, where, rep, split))
    for video in where:
        if video not in ann:
            plan.findings.append(finding("extra-video", f"rep {rep} ({split}) holds a video the annotation "
                                         "does not list: not copied", where[video], video=video, rep=rep))
    shards = [present[i:i + plan.size] for i in range(0, len(present), plan.size)]
    item = RepPlan(rep=rep, split=split, shards=shards, bytes=0, clips=0,
                   sources={v: where[v] for v in present})
    item.whole_files = _whole_files(where, item, plan)
    if item.whole_files is not None:
        item.bytes = sum(p.stat().st_size for p in item.whole_files)
        item.estimate = [p.stat().st_size for p in item.whole_files]
    else:
        held = {p: len(names[str(p)].entries) or 1 for p in files}
        size = {p: p.stat().st_size for p in files}
        item.estimate = [sum(size[where[v]] // held[where[v]] for v in videos) for videos in shards]
    return item


def _inspect(plan: ShardPlan, names: dict[str, ScanResult]) -> None:
    """Clip counts and `clip-missing` for every planned video, from the clip names."""
    for item in plan.items:
        ann = plan.upgraded[item.split]
        for videos in item.shards:
            for video in videos:
                path = item.sources[video]
                clips = names[str(path)].entries[video]
                for clip in ann[video]["clip_order"]:
                    if clip not in clips:
                        plan.findings.append(finding("clip-missing", f"clip absent from rep {item.rep} "
                                                     f"({item.split})", path, video=video, clip=clip, rep=item.rep))
                item.clips += len(clips)


def read_headers(plan: ShardPlan) -> None:
    """Bytes and signatures of every video copied as objects, from its source's dataset headers (pooled).

    Items copied as whole files need none: their bytes are the files' sizes and
    they are checked as byte copies.
    """
    by_objects = sorted({p for i in plan.items if i.whole_files is None for p in i.sources.values()})
    headers = scan_files(by_objects, facts=True) if by_objects else {}
    for p in by_objects:
        readable(p, headers[str(p)])
    for item in plan.items:
        if item.whole_files is not None:
            continue
        item.bytes = 0
        for video, path in item.sources.items():
            scan = headers[str(path)]
            item.scanned[video] = (scan.nbytes.get(video, 0), signature(scan, video))
            item.bytes += item.scanned[video][0]


def _source_metadata_findings(ds: FeatureDataset, where: dict[str, Path], rep: str, split: str) -> list[Finding]:
    """Where a v2 source's metadata disagrees with its shards' contents (the result follows the contents)."""
    from schemas.metadata import parse_metadata

    path = ds.layout.metadata.get((rep, split))
    if path is None:
        return [finding("missing-file", f"no metadata_{rep}.{split}.json: shards are read by their contents",
                        ds.root / rep, rep=rep)]
    try:
        mapping, errors = parse_metadata(read_annotation(path))
    except DuplicateKeyError:
        raise  # a video listed twice: which shard is meant is unknown; refuse (exit 1)
    except UserError as exc:
        return [finding("json-invalid", f"{exc}; shards are read by their contents", path, rep=rep)]
    if errors:
        return [finding("schema", "; ".join(errors[:3]), path, rep=rep)]
    index = {p: k for k, p in ds.layout.shards.get((rep, split), {}).items()}
    out = []
    for video, k in mapping.items():
        actual = where.get(video)
        if actual is None or index.get(actual) != k:
            held = "no shard" if actual is None else f"shard {index.get(actual)}"
            out.append(finding("metadata-mismatch", f"metadata says shard {k}, {held} holds it", path,
                               video=video, rep=rep))
    for video, actual in where.items():
        if video not in mapping:
            out.append(finding("metadata-mismatch", f"shard {index.get(actual)} holds it, metadata does not "
                               "list it", path, video=video, rep=rep))
    return out


def _whole_files(where: dict[str, Path], item: RepPlan, plan: ShardPlan) -> list[Path] | None:
    """Source files that are exactly the planned shards (same videos, nothing else), or None.

    Then a byte copy of each file is the bit-exact result, and much cheaper than
    copying its objects: v2 → v2 at the same size, or a split that fits in one shard.
    """
    if plan.compression is not None:
        return None
    files = []
    for videos in item.shards:
        path = where[videos[0]]
        if any(where[v] != path for v in videos) or sum(1 for p in where.values() if p == path) != len(videos):
            return None
        files.append(path)
    return files if len(set(files)) == len(files) else None
