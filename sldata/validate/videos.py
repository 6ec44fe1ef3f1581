"""`validate POSE --videos VIDEOS`: every video under VIDEOS has its pose in POSE.

The last step of a job array: every task may exit 0 while a video was never
extracted (a task lost, a node killed, a list that changed). Each video without
a complete pkl (or h5 key) is an error `pose-missing`, with the reason of its
last failed attempt when a `failures*.jsonl` in the pose folder recorded one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..findings import Finding, finding
from ..io import loads_json


def _complete_pkl(path: Path) -> bool:
    """Outputs appear atomically; an existing, non-empty pkl ending in the pickle STOP byte is whole."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size < 2:
                return False
            fh.seek(size - 1)
            return fh.read(1) == b"."
    except OSError:
        return False


def last_failures(pose_dir: Path) -> dict[str, str]:
    """video (relative path as recorded) -> reason, from every failures*.jsonl, newest file last."""
    files = sorted(pose_dir.glob("failures*.jsonl"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    reasons: dict[str, str] = {}
    for f in files:
        for line in f.read_bytes().splitlines():
            try:
                rec = loads_json(line, f)
            except UserError:
                continue  # a damaged line costs that reason only
            if isinstance(rec, dict) and isinstance(rec.get("video"), str):
                reasons[rec["video"]] = str(rec.get("reason", "unknown"))
    return reasons


def check_videos(pose: str | Path, videos: str | Path) -> list[Finding]:
    """`pose-missing` for each video under `videos` whose pose `pose` (pkl dir or pose h5) lacks."""
    from ..extract.inputs import discover_videos, relative_name, text_name

    pose, root = Path(pose), Path(videos)
    found = discover_videos(root)  # UserError (exit 2) when VIDEOS holds no video at all
    if pose.is_dir():
        from ..pkls import find_pkls, pkl_key

        pose_dir = pose
        pkls = {pkl_key(p): p for p in find_pkls(pose).files}

        def has(stem: str) -> bool:
            return text_name(stem) in pkls and _complete_pkl(pkls[text_name(stem)])
    else:
        from ..pose import PoseH5

        pose_dir = pose.parent
        with PoseH5(pose) as h5:
            keys = set(h5.keys())

        def has(stem: str) -> bool:
            return stem in keys or text_name(stem) in keys
    reasons = last_failures(pose_dir)
    out = []
    for v in found:
        if has(v.stem):
            continue
        rel = text_name(relative_name(v, root))
        why = reasons.get(rel)
        detail = (f"its last attempt failed: {why}" if why is not None
                  else "no failure recorded (never extracted, or its run was killed: rerun extract-pose)")
        out.append(finding("pose-missing", f"no complete pose; {detail}", text_name(str(v)), video=rel))
    return out
