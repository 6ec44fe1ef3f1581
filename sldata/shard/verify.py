"""shard's verification: the staged result against its plan, by headers only, as findings.

This is the one check `shard` runs before the rename (and tests run on a
finished result): each split's annotation is the upgraded source annotation;
each rep's metadata is the plan's assignment; every shard file holds exactly its
planned videos, nothing beyond the planned shards exists; an object copy has the
source's clips with the same shapes and dtypes (the signature taken from the
source headers); a byte copy has its source's size (a byte copy of the right
length is the source's bytes, headers included).
"""

from __future__ import annotations

from pathlib import Path

from ..features import annotation_path, metadata_path, shard_path
from ..findings import Finding, finding
from ..io import read_json
from ..scan import ScanResult
from .plan import RepPlan, ShardPlan, scan_files, signature


def verify(plan: ShardPlan, root: str | Path, workers: int | None = None,
           scans: dict[str, ScanResult] | None = None) -> list[Finding]:
    """Every way the result at `root` differs from `plan` (`copy-mismatch` findings); [] when it matches.

    `scans`: shard files already read back since they were written (by `shard`'s
    copy workers); every other one is scanned here.
    """
    root = Path(root)
    out: list[Finding] = []
    for split in plan.splits:
        path = annotation_path(root, split)
        if not path.exists() or path.read_bytes() != plan.annotation_bytes(split):
            out.append(finding("copy-mismatch", "missing or not the upgraded source annotation", path))
    shards = [shard_path(root, i.rep, i.split, k) for i in plan.items for k in range(len(i.shards))]
    scans = dict(scans or {})
    present = [p for p in shards if p.exists() and str(p) not in scans]
    by_names = {str(shard_path(root, i.rep, i.split, k)) for i in plan.items if i.whole_files is not None
                for k in range(len(i.shards))}
    scans.update(scan_files([p for p in present if str(p) in by_names], facts=False, workers=workers))
    scans.update(scan_files([p for p in present if str(p) not in by_names], facts=True, workers=workers))
    for item in plan.items:
        out += _verify_item(item, root, scans)
    return out


def _verify_item(item: RepPlan, root: Path, scans: dict[str, ScanResult]) -> list[Finding]:
    meta_file = metadata_path(root, item.rep, item.split)
    meta = read_json(meta_file) if meta_file.exists() else None
    if meta != item.assignment():
        return [finding("copy-mismatch", "missing or differs from the plan", meta_file, rep=item.rep)]
    out: list[Finding] = []
    for k, videos in enumerate(item.shards):
        path = shard_path(root, item.rep, item.split, k)
        if not path.exists():
            out.append(finding("copy-mismatch", "planned, absent", path, rep=item.rep))
            continue
        if item.whole_files is not None and path.stat().st_size != item.whole_files[k].stat().st_size:
            out.append(finding("copy-mismatch", f"size differs from its source {item.whole_files[k].name}", path,
                               rep=item.rep))
            continue
        scan = scans[str(path)]
        if scan.error:
            out.append(finding("copy-mismatch", scan.error, path, rep=item.rep))
            continue
        if len(scan.entries) != len(videos) or set(scan.entries) != set(videos):
            out.append(finding("copy-mismatch", f"holds {len(scan.entries)} videos, planned {len(videos)}", path,
                               rep=item.rep))
            continue
        if item.whole_files is not None:
            continue
        for video in videos:
            if signature(scan, video) != item.scanned[video][1]:
                out.append(finding("copy-mismatch", "clips, shapes or dtypes differ from the source", path,
                                   video=video, rep=item.rep))
    extra = shard_path(root, item.rep, item.split, len(item.shards))
    if extra.exists():
        out.append(finding("copy-mismatch", "a shard beyond the plan", extra, rep=item.rep))
    return out


def describe(findings: list[Finding], root: Path, limit: int = 20) -> str:
    """The findings as the lines of VerificationError's message: `REP/FILE[:/VIDEO]: why`."""
    lines = []
    for f in findings[:limit]:
        p = Path(f.file or root)
        name = str(p.relative_to(root)) if p.is_relative_to(root) else p.name
        lines.append(f"{name}{':/' + f.video if f.video else ''}: {f.message}")
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more")
    return "\n  ".join(lines)
