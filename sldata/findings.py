"""Findings: the one failure type. What validate reports, and every per-item failure of a command
(a pkl pkl2h5 could not pack, a video extract-pose could not extract, a `.pose` file import-pose
could not read), as objects with a stable code, never asserts; reports keep their documented
on-disk and --json shapes and build them from Findings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

Severity = Literal["error", "warning"]

#: The stable catalogue (SPEC §5) plus the few codes this toolkit adds.
CODES: dict[str, Severity] = {
    "unknown-layout": "error",
    "json-invalid": "error",
    "schema": "error",
    "h5-unreadable": "error",
    "missing-file": "error",
    "video-missing": "error",
    "clip-missing": "error",
    "clip-order-mismatch": "error",
    "clip-order-unnatural": "warning",
    "metadata-mismatch": "error",
    "duplicate-video": "error",
    "bad-shape": "error",
    "bad-dtype": "error",
    "non-finite": "error",
    "extra-video": "warning",
    "text-placeholder": "warning",
    "split-overlap": "warning",
    "pose-shape": "error",
    "pose-range": "warning",
    "labels-invalid": "error",
    "labels-unknown-key": "error",
    "labels-unlabeled": "warning",
    "labels-unseen-class": "warning",
    "json-duplicate-key": "error",
    "clip-ids-gap": "warning",
    # additions
    "clip-key-nonnumeric": "warning",
    "pkl-unsafe": "error",
    "extra-file": "warning",
    "extra-clip": "warning",
    "h5-structure": "error",
    "pkl-unreadable": "error",
    "pose-missing": "error",
    # per-item failures of other commands (never in validate's report; their --json keeps its shape)
    "extract-failed": "error",
    "pose-unreadable": "error",
    "worker-lost": "error",
    "copy-mismatch": "error",  # shard's verification: the staged result differs from its plan
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    file: str | None
    message: str
    video: str | None = None
    clip: str | None = None
    rep: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("code", "severity", "file", "video", "clip", "rep", "message")}


def finding(code: str, message: str, file: Any = None, *, video: str | None = None,
            clip: str | None = None, rep: str | None = None,
            severity: Severity | None = None) -> Finding:
    return Finding(code=code, severity=severity or CODES[code], file=None if file is None else str(file),
                   message=message, video=video, clip=clip, rep=rep)


@dataclass
class Report:
    layout: str
    findings: list[Finding] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def add(self, f: Finding) -> None:
        self.findings.append(f)

    def extend(self, fs: Iterable[Finding]) -> None:
        self.findings.extend(fs)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "layout": self.layout,
            "errors": [f.to_dict() for f in self.errors],
            "warnings": [f.to_dict() for f in self.warnings],
            "stats": self.stats,
        }
