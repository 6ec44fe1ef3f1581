"""Validate pose data (SPEC §3): one pose h5, or a directory of per-video pkls."""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import ValidationError

from schemas.errors import schema_errors
from schemas.pose import PoseRootAttrs, PoseVideoAttrs

from ..errors import UnsafePickleError, UserError
from ..findings import Report, finding
from ..io import safe_unpickle
from ..pkls import find_pkls, pkl_key
from ..pose import KEYPOINT_SETS, pkl_problems
from ..progress import NullProgress, Progress
from ..pool import Pool, WorkerLost, default_workers
from ..scan import (POOL_MIN_BYTES, POSE_RANGE, merge, nonfinite_count, out_of_range, plan_tasks, run_tasks,
                    scan_pose_file)



def _set_name(n: int | None) -> str | None:
    """The keypoint set a file without a `keypoint_set` attribute (OpenHands' own) holds, by N."""
    from ..pose import keypoint_set_for

    ks = keypoint_set_for(n) if n else None
    return ks.name if ks else None


def _schema(model: Any, data: dict[str, Any], file: Path, video: str | None, what: str) -> list:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return [finding("schema", str(e), file, video=video) for e in schema_errors(exc, (what,))]
    return []


def _majority(counter: Counter) -> int | None:
    return counter.most_common(1)[0][0] if counter else None


def validate_pose_h5(path: str | Path, deep: bool = False, workers: int | None = None,
                     progress: Progress | None = None, labels: Sequence[str | Path] | None = None,
                     split: str | None = None) -> Report:
    """Shapes, dtypes and attributes of every video; data (NaN, range) with `deep`.

    labels: labels.SPLIT.csv files checked against the h5's keys (`split` keeps one split).
    """
    progress = progress or NullProgress()
    path = Path(path)
    report = Report("pose-h5")
    tasks, n = plan_tasks([str(path)], workers or default_workers(), deep)
    pending = run_tasks(scan_pose_file, tasks, n, on_done=progress.advance)
    progress.start("validate" + (" --deep" if deep else ""), total=len(tasks), unit="parts")  # after the fork
    scan = merge(pending)[str(path)]
    progress.finish()
    if scan.error:
        report.add(finding("h5-unreadable", scan.error, path))
        report.stats = {"videos": 0}
        return report
    attrs = scan.attrs or {}
    report.extend(_schema(PoseRootAttrs, attrs, path, None, "attrs"))
    for code, video, clip, msg in scan.problems:
        report.add(finding(code, msg, path, video=video, clip=clip))
    kset = KEYPOINT_SETS.get(attrs.get("keypoint_set")) if isinstance(attrs.get("keypoint_set"), str) else None
    ns = Counter(kp[1] for kp, _, _ in scan.entries.values() if kp is not None and len(kp) == 3)
    expect_n = kset.num_keypoints if kset else _majority(ns)
    frames = 0
    for key in sorted(scan.entries):
        kp, vis, vattrs = scan.entries[key]
        msgs = _pose_shape_problems(kp, vis, expect_n, kset.name if kset else None)
        for m in msgs:
            report.add(finding("pose-shape", m, path, video=key))
        if kp is not None:
            report.extend(_schema(PoseVideoAttrs, vattrs, path, key, "attrs"))
            nf = vattrs.get("num_frames")
            if isinstance(nf, (int, np.integer)) and kp and nf != kp[0]:
                report.add(finding("pose-shape", f"attribute num_frames={nf} but keypoints have {kp[0]} frames",
                                   path, video=key))
            frames += kp[0] if kp else 0
    report.stats = {"videos": len(scan.entries), "frames": int(frames), "keypoints": expect_n,
                    "keypoint_set": kset.name if kset else _set_name(expect_n), "datasets": scan.datasets,
                    "deep": deep}
    if labels:
        from .labels import validate_labels

        keys = [k for k, (kp, _, _) in scan.entries.items() if kp is not None]
        findings, stats = validate_labels(path, keys, labels, split=split)
        report.extend(findings)
        report.stats["labels"] = stats
    return report


def _pose_shape_problems(kp: tuple | None, vis: tuple | None, expect_n: int | None,
                         kset_name: str | None) -> list[str]:
    if kp is None:
        return ["visibility without keypoints"] if vis is not None else []
    out = []
    if len(kp) != 3 or kp[2] != 3:
        out.append(f"keypoints shape {kp}, expected (F, N, 3)")
        return out
    f, n, _ = kp
    if f == 0:
        out.append("keypoints have no frames (F == 0)")
    if expect_n is not None and n != expect_n:
        named = f" ({kset_name})" if kset_name else " (like the other videos)"
        out.append(f"{n} keypoints, expected {expect_n}{named}")
    if vis is None:
        out.append("no visibility dataset")
    elif tuple(vis) not in ((f, n), (f, n, 1)):
        if vis and vis[0] != f:
            out.append(f"visibility has {vis[0]} frames, keypoints {f}")
        else:
            out.append(f"visibility shape {vis}, expected {(f, n)} or {(f, n, 1)}")
    return out


# --- pkl directories ---------------------------------------------------------------------

def check_pkl_batch(paths: list[str], deep: bool) -> list[tuple[str, str, Any, list]]:
    """Worker: [(file, key, (F, N) | None, problems)] for a batch of pkls; never raises.

    The checks are `pose.pkl_problems` (what `load_pkl` refuses); `deep` adds the data's.
    """
    out = []
    for p in paths:
        key = pkl_key(p)
        try:
            data = safe_unpickle(p)
        except UnsafePickleError as exc:
            out.append((p, key, None, [("pkl-unsafe", str(exc).split(": ", 1)[-1])]))
            continue
        except UserError as exc:
            out.append((p, key, None, [("pkl-unreadable", str(exc).split(": ", 1)[-1])]))
            continue
        except OSError as exc:  # permission, I/O: this file's failure, the others are still checked
            out.append((p, key, None, [("pkl-unreadable", f"cannot read: {exc.strerror or exc}".lower())]))
            continue
        problems = pkl_problems(data)
        kp, conf = (data.get("keypoints"), data.get("confidences")) if isinstance(data, dict) else (None, None)
        if not (isinstance(kp, np.ndarray) and isinstance(conf, np.ndarray)):
            out.append((p, key, None, problems))  # not a pose at all: nothing more to check
            continue
        fn = kp.shape[:2] if kp.ndim == 3 and kp.shape[2] == 3 else None
        floats = not any(code == "bad-dtype" for code, _ in problems)
        if deep and floats:
            bad = nonfinite_count(kp) + nonfinite_count(conf)
            if bad:
                problems.append(("non-finite", f"{bad} NaN/Inf value(s)"))
            if kp.ndim == 3 and kp.shape[-1] >= 2:
                lo, hi = POSE_RANGE
                outside = out_of_range(kp[..., :2]).any(axis=(1, 2))
                if outside.any():
                    problems.append(("pose-range", f"{int(outside.sum())} of {kp.shape[0]} frames have x/y outside "
                                     f"[{lo:g}, {hi:g}] (normalised image coordinates expected)"))
        out.append((p, key, fn, problems))
    return out


def _check_pkl_job(job: tuple[list[str], bool]) -> list[tuple]:
    return check_pkl_batch(*job)


def _check_pkls(batches: list[list[str]], deep: bool, workers: int, progress: Progress) -> list[tuple]:
    """`check_pkl_batch` over the batches in the pool; a batch whose worker died is checked again
    one pkl per job, so the pkl that kills its worker is the only one recorded (`pkl-unreadable`)."""
    pool = Pool(min(workers, len(batches)) if batches else 1, in_process=workers <= 1, name="sldata-validate")
    pending = pool.imap_unordered(_check_pkl_job, [(b, deep) for b in batches])
    progress.start("validate pkls", total=sum(len(b) for b in batches), unit="files")  # after the fork
    rows: list[tuple] = []
    again: list[list[str]] = []
    with closing(pending):
        for (batch, _), chunk in pending:
            if not isinstance(chunk, BaseException):
                rows.extend(chunk)
                progress.advance(len(chunk))
            elif len(batch) > 1:
                again.extend([p] for p in batch)
            else:
                why = chunk if isinstance(chunk, WorkerLost) else f"{type(chunk).__name__}: {chunk}"
                rows.append((batch[0], pkl_key(batch[0]), None, [("pkl-unreadable", f"reading it crashed the "
                                                                                    f"worker ({why})")]))
                progress.advance(1)
    progress.finish()
    if again:
        rows += _check_pkls(again, deep, workers, NullProgress())
    return rows


def validate_pkl_dir(root: str | Path, deep: bool = False, workers: int | None = None,
                     progress: Progress | None = None) -> Report:
    """Every pkl is unpickled with the restricted loader (pkls cannot be read lazily)."""
    progress = progress or NullProgress()
    root = Path(root)
    report = Report("pkl-dir")
    found = find_pkls(root)
    files = found.files
    for d, exc in found.unreadable:
        report.add(finding("pkl-unreadable", f"cannot list this directory ({(exc.strerror or str(exc)).lower()}): "
                           "its pkls are not checked", d))
    total = sum(p.stat().st_size for p in files)
    nworkers = workers or default_workers()
    if nworkers <= 1 or total < POOL_MIN_BYTES or len(files) < 2:
        nworkers = 1
    nbatch = max(1, min(len(files), nworkers * 8))
    batches = [[str(p) for p in files[i::nbatch]] for i in range(nbatch)]
    rows = _check_pkls([b for b in batches if b], deep, nworkers, progress)
    rows.sort()
    ns = Counter(fn[1] for _, _, fn, _ in rows if fn is not None)
    n_major = _majority(ns)
    frames = 0
    for p, key, fn, problems in rows:
        for code, msg in problems:
            report.add(finding(code, msg, p, video=key))
        if fn is not None:
            frames += fn[0]
            if fn[1] != n_major:
                report.add(finding("pose-shape", f"{fn[1]} keypoints, but {ns[n_major]} of {sum(ns.values())} "
                                   f"pkls have {n_major}", p, video=key))
    kset = next((k.name for k in KEYPOINT_SETS.values() if k.num_keypoints == n_major), None)
    report.stats = {"videos": len(files), "frames": int(frames), "keypoints": n_major, "keypoint_set": kset,
                    "deep": deep}
    return report
