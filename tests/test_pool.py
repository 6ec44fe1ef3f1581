"""sldata.pool: a worker's death is the failure of the job it was running, and of no other."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sldata.pool import Pool, WorkerLost


def _job(job: tuple[str, str]) -> str:
    """`crash`: the worker dies by SIGKILL; `once`: dies the first time only (a marker file remembers);
    `raise`: the function raises (a bug); anything else comes back doubled."""
    what, marker = job
    if what == "crash" or (what == "once" and not os.path.exists(marker)):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "raise":
        raise ValueError("a bug")
    return what * 2


@pytest.mark.parametrize("ahead", [1, 2])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_crash_is_that_jobs_failure_only(tmp_path: Path, workers: int, ahead: int) -> None:
    names = ["a", "crash", "b", "once", "c", "raise", "d", "e"]
    jobs = [(n, str(tmp_path / f"{n}.marker")) for n in names]
    got = dict(Pool(workers, ahead=ahead).imap_unordered(_job, jobs))
    assert set(got) == set(jobs)
    by_name = {job[0]: res for job, res in got.items()}
    assert isinstance(by_name["crash"], WorkerLost) and "killed by SIGKILL" in str(by_name["crash"])
    assert isinstance(by_name["raise"], RuntimeError) and "ValueError: a bug" in str(by_name["raise"])
    assert by_name["once"] == "onceonce"  # retried once on a fresh worker
    assert {n: by_name[n] for n in "abcde"} == {n: n * 2 for n in "abcde"}  # neighbours never charged


def test_stopping_early_leaves_no_worker(tmp_path: Path) -> None:
    pool = Pool(2, ahead=2)
    results = pool.imap_unordered(_job, [(str(i), "") for i in range(20)])
    next(results)
    results.close()
    import multiprocessing

    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_run_never_started_leaves_no_worker(how: str) -> None:
    """The workers start with `imap_unordered`: a caller that fails before reading the first result
    (a progress bar, Ctrl-C) must not leave them blocked on their results for the life of the process."""
    import gc
    import multiprocessing

    before = set(multiprocessing.active_children())
    results = Pool(2, ahead=2).imap_unordered(_job, [(str(i), "") for i in range(20)])
    assert len(set(multiprocessing.active_children()) - before) == 2
    if how == "close":
        results.close()
    else:
        del results
        gc.collect()
    assert set(multiprocessing.active_children()) <= before
