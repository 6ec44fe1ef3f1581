"""shard's copy step: each planned shard file written whole by one pool worker.

h5py serialises its calls within a process, so object copies (H5Ocopy) run in
parallel only in separate processes: `sldata.pool.Pool` hands each worker whole
shard files (the plan's videos, in the plan's order) and whole-file copies. A
worker writes through `sldata.h5.isolated` (a child of its own): a failed HDF5
write (disk full) comes back as the OSError it is instead of a crash at close.
Each file is fsynced by the worker that wrote it, so write-back overlaps the
other copies. The worker then reads, with `sldata.scan`, the headers the
verification compares: its videos' headers in their source files, and the
finished shard file's, opened afresh after the fsync. The parent compares them
(`verify`); nothing is compared in the worker.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generator

from ..errors import UserError
from ..features import copy_group, shard_path
from ..h5 import isolated
from ..io import fsync_path
from ..pool import Pool, Results, WorkerLost
from ..scan import ScanResult, scan_feature_file
from .plan import ShardPlan, readable, signature


@dataclass(frozen=True)
class CopyJob:
    """One shard file of the result: a byte copy of `source`, or `videos` copied object by object."""

    out: Path
    item: int  # index of its RepPlan in plan.items
    estimate: int  # bytes, for the progress bar
    source: Path | None = None
    videos: tuple[tuple[str, Path], ...] = ()  # (video, source file), in the plan's order
    compression: str | None = None
    compression_opts: Any = None


@dataclass
class Copied:
    """What a worker read back: the shard file's scan, and (object copies) its videos' source headers."""

    dest: ScanResult
    source: dict[str, tuple[int, int]]  # video -> (bytes on disk, signature), from the source file


def jobs(plan: ShardPlan, root: Path) -> list[CopyJob]:
    """Every shard file of the plan, biggest first (the pool balances better)."""
    out = []
    for i, item in enumerate(plan.items):
        for k, videos in enumerate(item.shards):
            path = shard_path(root, item.rep, item.split, k)
            if item.whole_files is not None:
                out.append(CopyJob(path, i, item.estimate[k], source=item.whole_files[k]))
            else:
                out.append(CopyJob(path, i, item.estimate[k], videos=tuple((v, item.sources[v]) for v in videos),
                                   compression=plan.compression, compression_opts=plan.compression_opts))
    return sorted(out, key=lambda j: -j.estimate)


def copy_all(todo: list[CopyJob], workers: int) -> Generator[tuple[CopyJob, Copied], None, None]:
    """Start the jobs in the pool now (the workers fork before any progress thread starts); yield each
    with what its worker read back, as it is done. The first failure stops the run.

    A disk-full or permission error is raised as the OSError it is (exit 2, one
    line); a job whose worker died twice is a UserError naming its shard file.
    """
    for job in todo:
        job.out.parent.mkdir(parents=True, exist_ok=True)
    return _checked(Pool(max(1, min(workers, len(todo))), name="sldata-shard").imap_unordered(run_job, todo))


def _checked(pairs: Results) -> Generator[tuple[CopyJob, Copied], None, None]:
    try:
        for job, result in pairs:
            if isinstance(result, WorkerLost):
                raise UserError(f"{job.out.name}: {result}; nothing was renamed into place")
            if isinstance(result, BaseException):
                raise result
            yield job, result
    finally:
        pairs.close()  # stops the workers still copying: no copy outlives the temporary


def run_job(job: CopyJob) -> Any:
    """In a worker: write one shard file, fsync it, read back the headers to compare.

    A failure is returned, not raised: the pool's bug guard would flatten an
    OSError into text, and its errno is the message.
    """
    try:
        if job.source is not None:
            _copy_file(job.source, job.out)
            return Copied(scan_feature_file(str(job.out), names_only=True), {})
        isolated(lambda _advance: _write_shard(job))
        return Copied(scan_feature_file(str(job.out), facts=True), _source_headers(job))
    except (OSError, UserError) as exc:
        return exc


def _source_headers(job: CopyJob) -> dict[str, tuple[int, int]]:
    by_file: dict[Path, list[str]] = defaultdict(list)
    for video, path in job.videos:
        by_file[path].append(video)
    out = {}
    for path, videos in by_file.items():
        scan = readable(path, scan_feature_file(str(path), facts=True, videos=videos))
        out.update((v, (scan.nbytes.get(v, 0), signature(scan, v))) for v in videos)
    return out


def _copy_file(src: Path, dst: Path) -> None:
    """A kernel copy (copy_file_range/sendfile) of a source file that is exactly one planned shard."""
    try:
        shutil.copyfile(src, dst)
        fsync_path(dst)
    except OSError as exc:
        if exc.filename is None and exc.errno:  # the kernel copy's errors (disk full) name no file
            raise OSError(exc.errno, exc.strerror, str(dst)) from None
        raise


def _write_shard(job: CopyJob) -> None:
    """In `isolated`'s child: the shard file, its videos copied from their source files.

    The shard carries the root attributes of its first video's source file. On
    failure nothing is closed (see `isolated`).
    """
    import h5py

    out = h5py.File(job.out, "w")
    sources: dict[Path, Any] = {}
    for i, (video, path) in enumerate(job.videos):
        src = sources.get(path)
        if src is None:
            src = sources[path] = h5py.File(path, "r")
        if i == 0:
            for k in src.attrs:
                out.attrs.create(k, src.attrs[k], dtype=src.attrs.get_id(k).dtype)
        copy_group(out, video, src[video], job.compression, job.compression_opts)
    out.close()
    for src in sources.values():
        src.close()
    fsync_path(job.out)
