"""The one local process pool: per-item work where a crash is that item's recorded failure.

Every command that spreads items over processes on this machine (extract-pose's
local executor, pkl2h5, validate, stats, shard) uses `Pool.imap_unordered`. It
yields `(job, result)` pairs as they finish. Each worker runs
`initializer(*initargs)` once, so expensive state (a MediaPipe graph, open
handles) is built once per worker and reused.

Why not `concurrent.futures.ProcessPoolExecutor`: when one of its workers dies,
the whole pool breaks and every job in flight fails with it, so the job that
killed it cannot be told from its neighbours. Here each worker runs one job at
a time over its own pipe, and its process sentinel says when it died, so the
rule is exact: a job whose worker dies (killed, out of memory, a native crash in
HDF5, a decoder or MediaPipe) is retried once on a fresh worker, and if that
one dies too the job yields `WorkerLost` and the run goes on with the others
(`MAX_ATTEMPTS`). A job function that raises is a bug in this toolkit, not the
user's data: the exception comes back as the job's result, so the caller can
record it like any other failure, and the run still goes on.

Workers die with the parent (`sldata.workers.die_with_parent`) and ignore
Ctrl-C, which the parent handles by killing them. They are forked when that is
safe (no other thread, no open HDF5 file, no MediaPipe/OpenCV state: their
native threads are not fork-safe), which spares re-importing the toolkit, and
spawned otherwise (not forkserver: a worker must be the child of the process
whose death it follows); the check is made again for each
replacement of a dead worker, because a progress bar's thread may run by then.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterator, Sequence

from .errors import UserError
from .workers import die_with_parent

Pair = tuple[Any, Any]
#: A job whose worker dies is tried on a fresh worker once more, then recorded as failed.
MAX_ATTEMPTS = 2


class WorkerLost(Exception):
    """The worker running a job died on every attempt; `detail` says how the last one ended."""

    def __init__(self, detail: str):
        super().__init__(f"worker process died on each of {MAX_ATTEMPTS} attempts ({detail}): "
                         "killed, out of memory, or a native crash")
        self.detail = detail


def default_workers(cap: int = 8) -> int:
    """The CPUs this process may use (its affinity, which SLURM and taskset set), at most `cap`."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, cap))


def check_workers(workers: int) -> int:
    if workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    return workers


def _nothing() -> None:
    pass


def _worker_main(conn: Any, fn: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple,
                 parent_pid: int) -> None:
    """A worker: jobs arrive on `conn` as (index, job), results go back as (index, result)."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which stops the pool
    initializer(*initargs)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        index, job = msg
        try:
            result = fn(job)
        except Exception as exc:  # a bug guard: the job's failure, not the worker's death
            result = RuntimeError(f"{type(exc).__name__}: {exc}")
        conn.send((index, result))


def how_it_ended(exitcode: int | None) -> str:
    """A dead process's exit code in words ("killed by SIGKILL", "exit status 1")."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


@dataclass
class Task:
    """A job and how many of its workers have died so far."""

    index: int
    job: Any
    attempts: int = 0


def start_method() -> str:
    """fork when this process has no other thread, no open HDF5 file and no MediaPipe/OpenCV loaded, else spawn."""
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    h5_open = False
    if "h5py" in sys.modules:
        import h5py

        h5_open = h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE) > 0
    fork_ok = ("fork" in methods and threading.active_count() == 1 and not h5_open
               and not {"mediapipe", "cv2"} & set(sys.modules))
    return "fork" if fork_ok else "spawn"


class _Slot:
    """One worker process and the tasks handed to it, oldest (the one it is running) first."""

    def __init__(self, fn: Callable, initializer: Callable, initargs: tuple, name: str):
        import multiprocessing as mp

        ctx = mp.get_context(start_method())
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, initializer, initargs, os.getpid()),
                                daemon=True, name=name)
        self.proc.start()
        child.close()
        self.tasks: Deque[Task] = collections.deque()

    def send(self, task: Task) -> None:
        self.tasks.append(task)
        try:
            self.conn.send((task.index, task.job))
        except OSError:  # it died meanwhile: its sentinel says so and the task is retried
            pass

    def stop(self, kill: bool = False) -> None:
        if kill and self.proc.is_alive():
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class Pool:
    """Worker processes on this machine (one per `workers`), or this process with `in_process`.

    `imap_unordered` starts the workers and hands each its first job before it
    returns, so they work while the caller does its own (parsing annotations,
    say), and the fork happens before the caller starts any thread.

    `ahead`: jobs handed to each worker at a time. With 1 (the default) a worker
    waits, between two jobs, until this process has read its result; with 2 its
    next job is already in its pipe, so it never waits for a caller busy with the
    last result (pkl2h5's writer). Attribution stays exact: a worker runs its jobs
    in the order it got them, so when it dies the oldest job without a result is
    the one it was running; the ones behind it had not started and are handed out
    again without costing an attempt. Jobs must then be small (a path and
    options), as a job sent while the worker sends a large result must fit the
    pipe's buffer.
    """

    def __init__(self, workers: int, initializer: Callable[..., None] = _nothing, initargs: tuple = (),
                 in_process: bool = False, name: str = "sldata-worker", ahead: int = 1):
        self.workers = check_workers(workers)
        self.initializer = initializer
        self.initargs = initargs
        self.in_process = in_process
        self.name = name
        self.ahead = max(1, ahead)
        self.notices: list[str] = []

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> "Results":
        if not jobs or self.in_process:
            return Results(self._inline(fn, jobs), [])

        def fresh() -> _Slot:
            return _Slot(fn, self.initializer, self.initargs, self.name)

        tasks: Deque[Task] = collections.deque(Task(i, job) for i, job in enumerate(jobs))
        slots: list[_Slot] = []
        try:
            for _ in range(min(self.workers, len(jobs))):
                slots.append(fresh())
            for _ in range(self.ahead):
                for slot in slots:
                    if tasks:
                        slot.send(tasks.popleft())
        except BaseException:  # a fork that fails (EAGAIN, EMFILE), a job that cannot be pickled
            _kill(slots)
            raise
        return Results(self._collect(slots, tasks, fresh, self.ahead), slots)

    def _inline(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]:
        if not jobs:
            return
        self.initializer(*self.initargs)
        for job in jobs:
            try:
                yield job, fn(job)
            except Exception as exc:  # the same bug guard as in a worker
                yield job, RuntimeError(f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _collect(slots: list[_Slot], tasks: Deque[Task], fresh: Callable[[], _Slot], ahead: int) -> Iterator[Pair]:
        from multiprocessing.connection import wait

        try:
            while any(s.tasks for s in slots):
                busy = [s for s in slots if s.tasks]
                ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in busy]))
                for i, slot in enumerate(slots):
                    if not slot.tasks or (slot.conn not in ready and slot.proc.sentinel not in ready):
                        continue
                    done: list[Pair] = []
                    dead = slot.proc.sentinel in ready
                    try:
                        while slot.tasks and slot.conn.poll():  # every result it sent, even if it died since
                            result = slot.conn.recv()[1]
                            done.append((slot.tasks.popleft().job, result))
                    except (EOFError, OSError):
                        dead = True
                    if dead:
                        slot.proc.join()
                        slot.conn.close()
                        if slot.tasks:  # the process is gone with the job it was running
                            task, *waiting = slot.tasks
                            tasks.extendleft(reversed(waiting))  # not started: no attempt spent
                            task.attempts += 1
                            if task.attempts < MAX_ATTEMPTS:
                                tasks.appendleft(task)
                            else:
                                done.append((task.job, WorkerLost(how_it_ended(slot.proc.exitcode))))
                            slot.tasks.clear()
                        if tasks:
                            slots[i] = slot = fresh()
                    while tasks and len(slot.tasks) < ahead:  # before the results go to the caller:
                        slot.send(tasks.popleft())           # the worker works while they are used
                    yield from done
        except BaseException:
            _kill(slots)  # interrupted (Ctrl-C, or the consumer stopped): stop now, do not finish the queue
            raise
        for slot in slots:
            if not slot.conn.closed:
                slot.stop()


def _kill(slots: list[_Slot]) -> None:
    for slot in slots:
        if not slot.conn.closed:
            slot.stop(kill=True)


class Results(Iterator[Pair]):
    """The pairs of one `imap_unordered` run (whose workers, if any, are already running).

    A generator's own clean-up runs only once it has started, so closing (or
    dropping) one before its first item would leave the workers blocked on their
    results for as long as this process lives, holding memory and inherited file
    descriptors. `close()`, and the garbage collection of this object, stop them
    whether or not iteration started.
    """

    def __init__(self, pairs: Iterator[Pair], slots: list[_Slot]):
        self._pairs = pairs
        self._slots = slots  # the list `_collect` updates in place when it replaces a dead worker
        self._finalizer = weakref.finalize(self, _kill, slots)

    def __iter__(self) -> "Results":
        return self

    def __next__(self) -> Pair:
        return next(self._pairs)

    def close(self) -> None:
        self._pairs.close()  # type: ignore[attr-defined]
        self._finalizer()
