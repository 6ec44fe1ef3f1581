"""Validate a v1 or v2 feature dataset (SPEC §2, §5).

Annotations are parsed in the parent; every HDF5 file is summarised by
`sldata.scan.scan_feature_file` (in a pool for big datasets); all cross-file checks
(annotation vs reps, metadata vs shards, D per rep) run here on the summaries.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.annotations import (AnnotationV1, AnnotationV2, annotation_version, is_int_key, is_placeholder,
                                 sort_clip_keys)
from schemas.errors import schema_errors
from schemas.metadata import parse_metadata

from ..errors import UserError
from ..features import Layout, annotation_path, metadata_path, shard_path, v1_path
from ..findings import Finding, Report, finding
from ..io import DuplicateKeyError, JsonError, loads_json
from ..progress import NullProgress, Progress
from ..pool import default_workers
from ..scan import ScanResult, merge, plan_tasks, run_tasks, scan_feature_file

_SHOW = 8  # names listed in one message before "..."


def _few(items: list[Any]) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:_SHOW]) + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")


def read_json_finding(path: Path) -> tuple[Any, Finding | None]:
    """(parsed JSON, None) or (None, a json-invalid / missing-file finding)."""
    raw, found = read_json_findings(path)
    return (raw, None) if raw is not None or not found else (None, found[0])


def read_json_findings(path: Path) -> tuple[Any, list[Finding]]:
    """(parsed JSON or None when unusable, findings).

    A key that occurs twice is a `json-duplicate-key` error per repeat (naming the
    video, and the clip when it is a clip key); the file is still checked, with
    the last occurrence of each key, so its other problems show too.
    """
    from ..errors import describe_os_error

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, [finding("missing-file", "file is absent", path)]
    except OSError as exc:
        return None, [finding("json-invalid", f"cannot read: {describe_os_error(exc)}", path)]
    try:
        return loads_json(data, path), []
    except DuplicateKeyError:
        return _with_duplicates(data, path)
    except JsonError as exc:
        return None, [finding("json-invalid", exc.detail, path)]


class _Repeats(dict):
    """A parsed JSON object that held some key more than once (`repeated`)."""

    repeated: list[str]


def _with_duplicates(data: bytes, path: Path) -> tuple[Any, list[Finding]]:
    """Parse keeping the last of each repeated key; one finding per repeated key, located."""
    import json

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        d = dict(pairs)
        if len(d) == len(pairs):
            return d
        seen: set[str] = set()
        out = _Repeats(d)
        out.repeated = []
        for k, _ in pairs:
            if k in seen and k not in out.repeated:
                out.repeated.append(k)
            seen.add(k)
        return out

    raw = json.loads(data, object_pairs_hook=hook, parse_constant=lambda c: float(c.replace("Infinity", "inf")))
    meta = path.name.startswith("metadata_")
    found: list[Finding] = []
    stack: list[tuple[Any, list[str]]] = [(raw, [])]
    while stack:  # only on files with repeats: the walk costs nothing on the normal path
        obj, trail = stack.pop()
        if isinstance(obj, _Repeats):
            for key in obj.repeated:
                if not trail:
                    what = "video id" if not meta else "video"
                    found.append(finding("json-duplicate-key", f"{what} {key!r} occurs twice"
                                         + (" in the metadata" if meta else "")
                                         + "; a reader keeps only one of them", path, video=key))
                elif len(trail) == 1 and not meta:
                    found.append(finding("json-duplicate-key", f"clip key {key!r} occurs twice in video "
                                         f"{trail[0]!r}; a reader keeps only one of them", path,
                                         video=trail[0], clip=key))
                else:
                    found.append(finding("json-duplicate-key", f"key {key!r} occurs twice in the object at "
                                         f"{'/'.join(trail)}", path, video=trail[0],
                                         clip=trail[1] if len(trail) > 1 and not meta else None))
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            if isinstance(v, (dict, list)):
                stack.append((v, trail + [str(k)]))
    return raw, sorted(found, key=lambda f: (f.video or "", f.clip or ""))


# --- annotations ---------------------------------------------------------------------

_SCHEMA_CHUNK = 256  # videos validated per pydantic call: bounded memory on corpus-sized files


def _schema_findings(raw: Any, path: Path, model: Any) -> list[Finding]:
    if isinstance(raw, dict) and len(raw) > _SCHEMA_CHUNK:
        items = list(raw.items())
        out = []
        for i in range(0, len(items), _SCHEMA_CHUNK):
            out.extend(_schema_findings(dict(items[i:i + _SCHEMA_CHUNK]), path, model))
        return out
    try:
        model.model_validate(raw)
    except ValidationError as exc:
        out = []
        for err in schema_errors(exc):
            loc = err.loc
            video = loc[0] if loc else None
            clip = loc[1] if len(loc) >= 2 and loc[1] != "clip_order" else None
            out.append(finding("schema", str(err), path, video=video, clip=clip))
        return out
    return []


def check_annotation(path: Path, kind: str) -> tuple[dict[str, list[str]] | None, list[Finding]]:
    """Parse and check one annotation file.

    Returns ({video: clip keys} of what could be read, findings); None when unusable.
    """
    raw, out = read_json_findings(path)
    if raw is None:
        return None, out
    if not isinstance(raw, dict):
        return None, out + [finding("schema", f"<root>: expected an object of videos, got {type(raw).__name__}",
                                    path)]
    version = annotation_version(raw)
    if kind == "v2" and version == 1 and raw:
        out.append(finding("schema", "no video has 'clip_order': a v1 annotation in a v2 dataset "
                           "(run `sldata upgrade-annotations`)", path))
        out.extend(_schema_findings(raw, path, AnnotationV1))
    else:
        out.extend(_schema_findings(raw, path, AnnotationV2 if version == 2 else AnnotationV1))
    expected: dict[str, list[str]] = {}
    for video, entry in raw.items():
        if not isinstance(entry, dict):
            continue
        clips = [k for k in entry if k != "clip_order"]
        expected[video] = clips
        order = entry.get("clip_order")
        if isinstance(order, list):
            out.extend(_clip_order(path, video, [str(c) for c in order], clips))
        elif order is None and version == 1:
            odd = [c for c in clips if not is_int_key(c)]
            if odd:
                out.append(finding("clip-key-nonnumeric", f"clip keys are not integers: {_few(odd)} "
                                   "(ordered naturally)", path, video=video))
            else:
                out.extend(_clip_ids_gap(path, video, clips))
        for clip in clips:
            out.extend(_placeholders(path, video, clip, entry[clip]))
    return expected, out


def _clip_ids_gap(path: Path, video: str, clips: list[str]) -> list[Finding]:
    """v1 integer clip keys that are not exactly "0".."n-1" (Sign_LLaVA's v1 loader looks clip
    i's context up by str(i) and raises KeyError after a gap)."""
    want = [str(i) for i in range(len(clips))]
    have = set(clips)
    if have == set(want):
        return []
    missing = [k for k in want if k not in have]
    extra = sort_clip_keys([k for k in clips if k not in set(want)])
    return [finding("clip-ids-gap", f"clip ids are not 0..{len(clips) - 1}: missing {_few(missing)}, "
                    f"found instead {_few(extra)} (Sign_LLaVA's v1 loader looks context up by str(i))",
                    path, video=video)]


def _clip_order(path: Path, video: str, order: list[str], clips: list[str]) -> list[Finding]:
    out = []
    counts = Counter(order)
    dup = sorted(c for c, n in counts.items() if n > 1)
    missing = [c for c in clips if c not in counts]
    extra = [c for c in counts if c not in set(clips)]
    if dup or missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if extra:
            parts.append(f"lists unknown {_few(extra)}")
        if dup:
            parts.append(f"repeats {_few(dup)}")
        out.append(finding("clip-order-mismatch", "clip_order " + "; ".join(parts), path, video=video))
    natural = sort_clip_keys(list(order))
    if len(order) > 1 and order == sorted(order) and order != natural:
        out.append(finding("clip-order-unnatural", f"clip_order is sorted as text ({_few(order)}); "
                           f"temporal order is probably {_few(natural)}", path, video=video))
    return out


def _placeholders(path: Path, video: str, clip: str, entry: Any) -> list[Finding]:
    if not isinstance(entry, dict):
        return []
    out = []
    if "translation" in entry and is_placeholder(entry["translation"]):
        out.append(finding("text-placeholder", f"translation is {_show_text(entry['translation'])}", path,
                           video=video, clip=clip))
    paras = entry.get("paraphrases")
    if isinstance(paras, list):
        for i, p in enumerate(paras):
            if is_placeholder(p):
                out.append(finding("text-placeholder", f"paraphrases[{i}] is {_show_text(p)}", path,
                                   video=video, clip=clip))
    return out


def _show_text(v: Any) -> str:
    return "NaN" if isinstance(v, float) else "null" if v is None else repr(v)


# --- the dataset ---------------------------------------------------------------------

def _all_splits(layout: Layout) -> list[str]:
    found = set(layout.splits) | {s for _, s in layout.v1_files} | {s for _, s in layout.shards} \
        | {s for _, s in layout.metadata}
    return sorted(found, key=lambda s: (s not in layout.splits, layout.splits.index(s) if s in layout.splits else 0, s))


def validate_features(layout: Layout, deep: bool = False, split: str | None = None,
                      workers: int | None = None, progress: Progress | None = None) -> Report:
    """Check a feature dataset; returns a Report (never raises on bad data)."""
    progress = progress or NullProgress()
    root, kind = layout.root, layout.kind
    report = Report(kind)
    splits = _all_splits(layout)
    if split is not None:
        if split not in splits:
            raise UserError(f"{root}: no split {split!r} (have: {', '.join(splits) or 'none'})")
        splits = [split]
    reps = layout.reps
    if not reps:
        report.add(finding("missing-file", "annotations but no feature files (REP.SPLIT.h5 or REP/REP.SPLIT.K.h5)",
                           root))

    # files to scan, per (rep, split)
    files: dict[tuple[str, str], dict[int, Path]] = {}
    for rep in reps:
        for s in splits:
            if kind == "v1":
                if (rep, s) in layout.v1_files:
                    files[(rep, s)] = {0: layout.v1_files[(rep, s)]}
            else:
                files[(rep, s)] = dict(layout.shards.get((rep, s), {}))
    all_files = [str(p) for d in files.values() for p in d.values()]

    # HDF5 summaries: with a pool the workers start now and scan while the parent parses JSON
    tasks, nworkers = plan_tasks(all_files, workers or default_workers(), deep)
    pending = run_tasks(scan_feature_file, tasks, nworkers, on_done=progress.advance)
    progress.start("validate" + (" --deep" if deep else ""), total=len(tasks), unit="files")  # after the fork

    # annotations (cheap, in the parent)
    expected: dict[str, dict[str, list[str]] | None] = {}
    for s in splits:
        path = annotation_path(root, s)
        if s not in layout.splits:
            report.add(finding("missing-file", f"feature files exist for split {s!r} but its annotation is absent",
                               path))
            expected[s] = None
            continue
        expected[s], fs = check_annotation(path, kind)
        report.extend(fs)
    _split_overlap(report, root, splits, expected)

    scans = merge(pending)
    progress.finish()

    rep_of = {str(p): rep for (rep, _), d in files.items() for p in d.values()}
    for path in all_files:
        scan = scans[path]
        rep = rep_of[path]
        if scan.error:
            report.add(finding("h5-unreadable", scan.error, path, rep=rep))
        for code, video, clip, msg in scan.problems:
            report.add(finding(code, msg, path, video=video, clip=clip, rep=rep))
    _check_dims(report, files, scans)

    for s in splits:
        for rep in reps:
            if kind == "v1":
                _cross_v1(report, root, rep, s, files.get((rep, s), {}), scans, expected[s])
            else:
                _cross_v2(report, layout, rep, s, files.get((rep, s), {}), scans, expected[s])

    n_videos = {s: len(e) for s, e in expected.items() if e is not None}
    n_clips = {s: sum(len(c) for c in e.values()) for s, e in expected.items() if e is not None}
    report.stats = {
        "splits": splits, "reps": reps,
        "videos": sum(n_videos.values()), "clips": sum(n_clips.values()),
        "per_split": {s: {"videos": n_videos.get(s, 0), "clips": n_clips.get(s, 0)} for s in splits},
        "h5_files": len(all_files), "datasets": sum(sc.datasets for sc in scans.values()),
        "deep": deep, "workers": nworkers,
    }
    if deep:
        report.stats["values_read"] = sum(sc.values for sc in scans.values())
    return report


def _split_overlap(report: Report, root: Path, splits: list[str],
                   expected: dict[str, dict[str, list[str]] | None]) -> None:
    first: dict[str, str] = {}
    for s in splits:
        for video in expected.get(s) or {}:
            if video in first:
                report.add(finding("split-overlap", f"video also in split {first[video]!r}",
                                   annotation_path(root, s), video=video))
            else:
                first[video] = s


def _check_dims(report: Report, files: dict[tuple[str, str], dict[int, Path]],
                scans: dict[str, ScanResult]) -> None:
    """bad-shape for clips whose D differs from the majority D of their rep (all splits)."""
    by_rep: dict[str, list[str]] = defaultdict(list)
    for (rep, _), d in files.items():
        by_rep[rep].extend(str(p) for p in d.values())
    for rep, paths in by_rep.items():
        dims: Counter[int] = Counter()
        for p in paths:
            for clips in scans[p].entries.values():
                dims.update(shape[1] for shape in clips.values() if len(shape) == 2)
        if len(dims) < 2:
            continue
        major, n_major = dims.most_common(1)[0]
        total = sum(dims.values())
        for p in paths:
            for video, clips in scans[p].entries.items():
                for clip, shape in clips.items():
                    if len(shape) == 2 and shape[1] != major:
                        report.add(finding("bad-shape", f"shape {shape}: D={shape[1]}, but {n_major} of {total} "
                                           f"clips of rep {rep!r} have D={major}", p,
                                           video=video, clip=clip, rep=rep))


def _broken(scan: ScanResult) -> tuple[set[str], set[tuple[str, str]]]:
    """Videos and clips the scan could not read: their absence is already a finding."""
    videos, clips = set(), set()
    for code, video, clip, _ in scan.problems:
        if code in ("h5-unreadable", "h5-structure") and video is not None:
            (videos.add(video) if clip is None else clips.add((video, clip)))
    return videos, clips


def _check_clips(report: Report, path: str, rep: str, video: str, want: list[str], have: dict[str, Any],
                 broken_clips: set[tuple[str, str]]) -> None:
    missing = [c for c in want if c not in have and (video, c) not in broken_clips]
    for c in missing:
        report.add(finding("clip-missing", f"clip {c!r} of the annotation is absent from rep {rep!r}", path,
                           video=video, clip=c, rep=rep))
    wanted = set(want)
    extra = [c for c in have if c not in wanted]
    if extra:
        report.add(finding("extra-clip", f"rep holds clips the annotation does not list: {_few(extra)}", path,
                           video=video, rep=rep))


def _cross_v1(report: Report, root: Path, rep: str, split: str, files: dict[int, Path],
              scans: dict[str, ScanResult], expected: dict[str, list[str]] | None) -> None:
    if not files:
        report.add(finding("missing-file", f"rep {rep!r} has no file for split {split!r} (other reps do)",
                           v1_path(root, rep, split), rep=rep))
        return
    path = str(files[0])
    scan = scans[path]
    if scan.error or expected is None:
        return
    broken_videos, broken_clips = _broken(scan)
    for video, clips in expected.items():
        if video in scan.entries:
            _check_clips(report, path, rep, video, clips, scan.entries[video], broken_clips)
        elif video not in broken_videos:
            report.add(finding("video-missing", f"video of the annotation is absent from rep {rep!r}", path,
                               video=video, rep=rep))
    for video in scan.entries:
        if video not in expected:
            report.add(finding("extra-video", "rep holds a video the annotation does not list", path,
                               video=video, rep=rep))


def _cross_v2(report: Report, layout: Layout, rep: str, split: str, shards: dict[int, Path],
              scans: dict[str, ScanResult], expected: dict[str, list[str]] | None) -> None:
    root = layout.root
    meta_path = layout.metadata.get((rep, split))
    mapping: dict[str, int] | None = None
    if meta_path is None:
        what = "its metadata file" if shards else "any shard or metadata (other reps have this split)"
        report.add(finding("missing-file", f"rep {rep!r} split {split!r} lacks {what}",
                           metadata_path(root, rep, split), rep=rep))
        if not shards:
            return
    else:
        raw, found = read_json_findings(meta_path)
        report.extend(replace(f, rep=rep) for f in found)
        if raw is not None:
            mapping, errors = parse_metadata(raw)
            for e in errors:
                report.add(finding("schema", e, meta_path, rep=rep,
                                   video=e.split(":")[0] if not e.startswith("<root>") else None))
            if errors:
                mapping = _lenient_metadata(raw)
    # which shards can be trusted to answer "is video v here?"
    readable = {k: p for k, p in shards.items() if not scans[str(p)].error}
    if mapping is not None:
        named = Counter(mapping.values())
        for k in sorted(named):
            if k not in shards:
                report.add(finding("missing-file", f"shard {k} is named by the metadata for {named[k]} video(s) "
                                   "but is absent", shard_path(root, rep, split, k), rep=rep))
    located: dict[str, list[int]] = defaultdict(list)
    for k, p in readable.items():
        for video in scans[str(p)].entries:
            located[video].append(k)
    broken: dict[int, tuple[set[str], set[tuple[str, str]]]] = {k: _broken(scans[str(p)]) for k, p in readable.items()}
    for video, ks in located.items():
        if len(ks) > 1:
            report.add(finding("duplicate-video", f"video is in shards {', '.join(map(str, sorted(ks)))} of rep {rep!r}",
                               shards[sorted(ks)[1]], video=video, rep=rep))
    if mapping is not None:
        for video, k in mapping.items():
            if k in readable and video not in scans[str(readable[k])].entries and video not in broken[k][0]:
                elsewhere = located.get(video)
                where = f" (it is in shard {', '.join(map(str, elsewhere))})" if elsewhere else ""
                report.add(finding("metadata-mismatch", f"metadata points to shard {k}, which does not hold the "
                                   f"video{where}", meta_path, video=video, rep=rep))
        for video, ks in located.items():
            for k in ks:
                if mapping.get(video) != k:
                    said = "does not list it" if video not in mapping else f"points to shard {mapping[video]}"
                    report.add(finding("metadata-mismatch", f"shard {k} holds the video but the metadata {said}",
                                       shards[k], video=video, rep=rep))
    if expected is None:
        return
    unavailable = set(shards) - set(readable)
    for video, clips in expected.items():
        ks = located.get(video)
        if ks:
            k = mapping[video] if mapping is not None and mapping.get(video) in ks else ks[0]
            p = str(shards[k])
            _check_clips(report, p, rep, video, clips, scans[p].entries[video], broken[k][1])
            continue
        target = mapping.get(video) if mapping is not None else None
        if target is not None and (target in unavailable or target not in shards):
            continue  # its shard is missing or unreadable: already reported
        if any(video in b[0] for b in broken.values()):
            continue
        where = shard_path(root, rep, split, target) if target is not None else (meta_path or root / rep)
        report.add(finding("video-missing", f"video of the annotation is absent from rep {rep!r}", where,
                           video=video, rep=rep))
    for video, ks in located.items():
        if video not in expected:
            report.add(finding("extra-video", "rep holds a video the annotation does not list", shards[ks[0]],
                               video=video, rep=rep))


def _lenient_metadata(raw: Any) -> dict[str, int]:
    """The usable entries of a metadata file that failed its schema."""
    out = {}
    if isinstance(raw, dict):
        for video, k in raw.items():
            good, _ = parse_metadata({video: k})
            out.update(good)
    return out
