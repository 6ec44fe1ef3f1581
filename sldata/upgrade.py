"""Annotation upgrade v1 → v2 (SPEC §2.3): `sldata upgrade-annotations`, and the annotations `shard` writes.

The upgrade adds `clip_order` (numeric, natural for non-integer keys) and keeps
everything else byte-for-byte as parsed: extra fields, key order, video order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schemas.annotations import AnnotationV2, is_int_key, sort_clip_keys
from schemas.errors import format_errors

from .errors import UserError
from .features import describe_duplicate
from .io import DuplicateKeyError, check_output, dumps_json, read_json, text_name, write_bytes_atomic


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


def read_annotation(path: Path) -> Any:
    """An annotation (or metadata) JSON; a repeated key is a DuplicateKeyError that says which video/clip."""
    try:
        return read_json(path)
    except DuplicateKeyError as exc:
        raise _duplicate(path, exc) from None


def _duplicate(path: Path, exc: DuplicateKeyError) -> DuplicateKeyError:
    out = DuplicateKeyError(path, exc.key, exc.where)
    out.args = (f"{text_name(path)}: {describe_duplicate(exc, path)}; a reader would silently keep only one "
                "of them: fix the file",)
    return out


def upgrade_annotation_file(src: str | Path, out: str | Path | None = None,
                            overwrite: bool = False) -> UpgradeReport:
    """Upgrade one annotation file into `out` (default: beside it, `.v2.json`), atomically."""
    src = Path(src)
    if src.is_dir():  # before naming the default output: `.` has no name to derive one from
        raise UserError(f"{text_name(src)}: is a directory, expected a JSON file")
    out = Path(out) if out is not None else default_upgrade_output(src)
    check_output(out, inputs=[src], kind="file", overwrite=True)  # before reading a corpus-sized file
    if os.path.lexists(out) and not overwrite:
        raise UserError(f"{text_name(out)} already exists (use --overwrite to replace it)")
    new, report = upgrade_annotation(read_annotation(src), where=text_name(src))
    write_bytes_atomic(out, annotation_bytes(new), inputs=[src], overwrite=overwrite)
    report.input, report.output = str(src), str(out)
    return report


__all__ = ["upgrade_annotation", "upgrade_annotation_file", "default_upgrade_output", "UpgradeReport",
           "annotation_bytes", "read_annotation"]
