"""`shard`: plan → copy → verify → rename, the whole v2 dataset staged beside DST.

The temporary directory's name carries `.sldata-tmp-` (readers ignore it); the
shard files are written there in parallel (`copy`), exactly as the plan decided;
the result is checked against the plan (`verify`), fsynced and renamed into
place only when the check passes (`sldata.io.atomic_path`). A killed run leaves
only the temporary, which the next run into DST removes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..features import annotation_path, is_feature_dataset_dir, metadata_path
from ..io import atomic_path, check_output, output_lock, remove_stale_temporaries, write_bytes_atomic, write_json
from ..pool import default_workers
from ..progress import NullProgress, Progress
from ..scan import ScanResult
from .copy import copy_all, jobs
from .plan import ShardPlan, default_dst, plan_shard, read_headers
from .verify import describe, verify


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
          dry_run: bool = False, progress: Progress | None = None, workers: int | None = None) -> ShardResult:
    """v1 or v2 dataset → v2 with `size` videos per shard: plan → copy → verify → rename.

    With `strict`, annotated videos or clips absent from a rep stop the run before
    anything is written (the result has `written=False` and the problems in its plan).
    `workers`: processes copying shard files (default: the usable cores, at most 8).
    """
    if dry_run:
        return ShardResult(plan_shard(src, dst, size, reps=reps, splits=splits, compression=compression),
                           written=False)
    dst = Path(dst) if dst is not None else default_dst(src)
    with output_lock(dst, "dataset"):  # a second run into DST is refused (exit 2) for as long as this one runs
        return _shard_locked(src, dst, size, reps=reps, splits=splits, compression=compression,
                             overwrite=overwrite, strict=strict, progress=progress or NullProgress(),
                             workers=workers or default_workers())


def _shard_locked(src: str | Path, dst: Path, size: int, *, reps: list[str] | None, splits: list[str] | None,
                  compression: str | None, overwrite: bool, strict: bool, progress: Progress,
                  workers: int) -> ShardResult:
    plan = plan_shard(src, dst, size, reps=reps, splits=splits, compression=compression, headers=False)
    # the output rule before any copying: DST is empty, or --overwrite and nothing but a feature dataset
    check_output(dst, inputs=[plan.src], kind="dir", overwrite=overwrite, owned=is_feature_dataset_dir)
    if strict and plan.problems:
        read_headers(plan)  # the bytes the plan would copy, for the summary
        return ShardResult(plan, written=False)
    removed = remove_stale_temporaries(dst)
    with atomic_path(dst, kind="dir", overwrite=overwrite, owned=is_feature_dataset_dir, inputs=[plan.src]) as tmp:
        tmp.mkdir()
        todo = jobs(plan, tmp)
        done = copy_all(todo, workers)  # the workers fork now, before the progress bar's thread
        written: dict[str, ScanResult] = {}
        try:
            progress.start(f"shard → {dst.name}", total=sum(j.estimate for j in todo), unit="bytes")
            for job, copied in done:
                item = plan.items[job.item]
                for video, (nbytes, sig) in copied.source.items():
                    item.scanned[video] = (nbytes, sig)
                    item.bytes += nbytes
                written[str(job.out)] = copied.dest
                progress.advance(job.estimate)
        finally:
            done.close()  # on any failure: no copy outlives the temporary
            progress.finish()
        for item in plan.items:
            metadata_path(tmp, item.rep, item.split).parent.mkdir(parents=True, exist_ok=True)
            write_json(metadata_path(tmp, item.rep, item.split), item.assignment())
        for split in plan.splits:
            write_bytes_atomic(annotation_path(tmp, split), plan.annotation_bytes(split))
        problems = verify(plan, tmp, workers, scans=written)
        if problems:
            raise VerificationError("verification failed, nothing renamed into place:\n  "
                                    + describe(problems, tmp))
    return ShardResult(plan, written=True, removed_stale=[str(p) for p in removed])
