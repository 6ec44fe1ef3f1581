"""Metric logging: one CSV per stream (train, eval) plus TensorBoard, rank 0 only.

CSV rows are flushed as they are written. On resume, rows beyond the resumed step
are dropped (they came from the part of the run that is being redone), so the
file always reads as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sldata.io import write_bytes_atomic

from .checkpoint import write_error


class CsvLog:
    """Append-only CSV with a header fixed by the first row (later new keys go to TensorBoard only)."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), None)
            self.fields = header or None

    def truncate_after(self, step: int) -> None:
        """Keep only rows with step <= `step` (rewritten atomically)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if self.fields is None:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.fields, lineterminator="\n")
        w.writeheader()
        for row in rows:
            try:
                if int(row["step"]) <= step:
                    w.writerow(row)
            except (KeyError, TypeError, ValueError):
                continue
        try:
            write_bytes_atomic(self.path, buf.getvalue().encode("utf-8"))
        except OSError as exc:
            raise write_error(self.path, exc) from None

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = ["step"] + [k for k in row if k != "step"]
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
                if new:
                    w.writeheader()
                w.writerow({k: _fmt(v) for k, v in row.items()})
                fh.flush()
        except OSError as exc:  # disk full: a partial row is past the last checkpoint, dropped on resume
            raise write_error(self.path, exc) from None


def _fmt(v: Any) -> Any:
    # repr of a float round-trips exactly: resumed runs compare bit-for-bit.
    return repr(float(v)) if isinstance(v, float) else v


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class MetricsLogger:
    """train.csv / eval.csv and TensorBoard event files under `out_dir`; a no-op off rank 0."""

    def __init__(self, out_dir: Path, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.out_dir = Path(out_dir)
        self._tb = None
        self._csv: dict[str, CsvLog] = {}
        if not enabled:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stream in ("train", "eval"):
            self._csv[stream] = CsvLog(self.out_dir / f"{stream}.csv")
            if resume_step is not None:
                self._csv[stream].truncate_after(resume_step)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events a killed run wrote past the checkpoint being resumed
            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"),
                                     purge_step=None if resume_step is None else resume_step + 1)

    def log(self, stream: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._csv[stream].write({"step": step, **values})
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{stream}/{k}", v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
