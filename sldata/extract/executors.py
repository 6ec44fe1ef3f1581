"""Where the per-video work runs: this process, a local process pool, or a Ray cluster.

An executor takes a picklable module-level function and a list of jobs and
yields `(job, result)` pairs as they finish. Each worker runs
`initializer(*initargs)` once, so expensive state (a MediaPipe graph) is built
once per worker and reused across its videos.

A worker that dies in the middle of a job (killed, out of memory, a native crash
in a decoder, a lost node) costs that job one attempt: the job is retried once on
a fresh worker, and if that one dies too the job yields `WorkerLost` and the run
goes on with the other jobs. Both pools share this rule (`MAX_ATTEMPTS`).
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Deque, Iterator, Protocol, Sequence

from ..errors import UserError
from ..workers import die_with_parent

Pair = tuple[Any, Any]
#: A job whose worker dies is tried on a fresh worker once more, then recorded as failed.
MAX_ATTEMPTS = 2


class WorkerLost(Exception):
    """The worker running a job died on every attempt; `detail` says how the last one ended."""

    def __init__(self, detail: str):
        super().__init__(f"worker process died on each of {MAX_ATTEMPTS} attempts ({detail}): killed, out of "
                         "memory, or a native crash while decoding or running MediaPipe")
        self.detail = detail


class Executor(Protocol):
    notices: list[str]

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]: ...


def _worker_main(conn: Any, fn: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple,
                 parent_pid: int) -> None:
    """A local worker: jobs arrive on `conn` as (index, job), results go back as (index, result)."""
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
        except Exception as exc:  # the job function records its own failures; this is a bug guard
            result = RuntimeError(f"{type(exc).__name__}: {exc}")
        conn.send((index, result))


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


@dataclass
class _Task:
    index: int
    job: Any
    attempts: int = 0


class _Slot:
    """One worker process and the task it is running (None when idle)."""

    def __init__(self, ctx: Any, fn: Callable, initializer: Callable, initargs: tuple):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, initializer, initargs, os.getpid()),
                                daemon=True, name="sldata-extract-worker")
        self.proc.start()
        child.close()
        self.task: _Task | None = None

    def send(self, task: _Task) -> None:
        self.task = task
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


class LocalExecutor:
    """Worker processes on this machine (one per `workers`), or this process with `in_process`.

    Workers are forked where the platform allows it and the parent holds no
    MediaPipe state and no threads (checked again for each replacement of a dead
    worker: a progress bar's thread may be running by then), which spares each
    worker re-importing the CLI; otherwise they are spawned. `imap_unordered` starts the
    workers and hands each its first job before it returns, so the fork happens
    before the caller starts any thread.
    """

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple = (),
                 in_process: bool = False):
        if workers < 1:
            raise UserError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.initializer = initializer
        self.initargs = initargs
        self.in_process = in_process
        self.notices: list[str] = []

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]:
        if not jobs:
            return iter(())
        if self.in_process:
            return self._inline(fn, jobs)
        import multiprocessing as mp

        def fresh() -> _Slot:  # decided each time: a progress bar's thread may have started meanwhile
            fork_ok = "fork" in mp.get_all_start_methods() and "mediapipe" not in sys.modules \
                and threading.active_count() == 1
            return _Slot(mp.get_context("fork" if fork_ok else "spawn"), fn, self.initializer, self.initargs)

        tasks: Deque[_Task] = collections.deque(_Task(i, job) for i, job in enumerate(jobs))
        slots = [fresh() for _ in range(min(self.workers, len(jobs)))]
        for slot in slots:
            slot.send(tasks.popleft())
        return self._collect(slots, tasks, fresh)

    def _inline(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]:
        self.initializer(*self.initargs)
        for job in jobs:
            try:
                yield job, fn(job)
            except Exception as exc:  # the worker function records its own failures; this is a bug guard
                yield job, exc

    @staticmethod
    def _collect(slots: list[_Slot], tasks: Deque[_Task], fresh: Callable[[], _Slot]) -> Iterator[Pair]:
        from multiprocessing.connection import wait

        try:
            while any(s.task for s in slots):
                busy = [s for s in slots if s.task is not None]
                ready = set(wait([s.conn for s in busy] + [s.proc.sentinel for s in busy]))
                for i, slot in enumerate(slots):
                    if slot.task is None or (slot.conn not in ready and slot.proc.sentinel not in ready):
                        continue
                    got = None
                    try:
                        if slot.conn.poll():
                            got = slot.conn.recv()
                    except (EOFError, OSError):
                        got = None
                    task, slot.task = slot.task, None
                    if got is not None:
                        yield task.job, got[1]
                    else:  # the process is gone with the task
                        slot.proc.join()
                        ended = _how_it_ended(slot.proc.exitcode)
                        slot.conn.close()
                        task.attempts += 1
                        if task.attempts < MAX_ATTEMPTS:
                            tasks.appendleft(task)
                        else:
                            yield task.job, WorkerLost(ended)
                        if tasks:
                            slots[i] = slot = fresh()
                    if tasks:
                        slot.send(tasks.popleft())
        except BaseException:
            # Interrupted (Ctrl-C, or the consumer stopped): stop now, do not finish the queue.
            for slot in slots:
                if not slot.conn.closed:
                    slot.stop(kill=True)
            raise
        for slot in slots:
            if not slot.conn.closed:
                slot.stop()


class _RayWorker:
    """A Ray actor: one per worker slot, holding its own MediaPipe graph."""

    def __init__(self, fn: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple):
        self.fn = fn
        initializer(*initargs)

    def run(self, job: Any) -> Any:
        try:
            return self.fn(job)
        except Exception as exc:  # the job function records its own failures; this is a bug guard
            return RuntimeError(f"{type(exc).__name__}: {exc}")


class RayExecutor:
    """The same per-video work on a Ray cluster (`pip install 'sldata[ray]'`).

    Connects to `RAY_ADDRESS` when set (e.g. `auto` inside a cluster), else starts
    a local Ray without a dashboard. Videos and the output directory must be on
    storage every node sees. One actor per worker, each needing one CPU: more
    workers than the cluster has CPUs would leave actors pending for ever, so the
    count is clamped to the cluster's CPUs (with a notice). Jobs go to actors one
    at a time; an actor that dies is replaced and its job retried (`MAX_ATTEMPTS`).
    """

    def __init__(self, workers: int | None, initializer: Callable[..., None], initargs: tuple = ()):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'sldata[ray]'") from None
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.initializer = initializer
        self.initargs = initargs
        self.notices: list[str] = []

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]:
        import ray

        if not jobs:
            return iter(())
        if not ray.is_initialized():
            address = os.environ.get("RAY_ADDRESS") or None
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray"
                raise UserError(f"--executor ray: cannot start or reach {where}: {exc}") from None
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < 1:
            raise UserError("the Ray cluster has no CPUs to run workers on")
        n = self.workers or cpus
        if n > cpus:
            self.notices.append(f"--workers {n} is more than the Ray cluster's {cpus} CPUs: "
                                f"running {cpus} workers (one CPU each)")
            n = cpus
        actor_cls = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayWorker)

        def fresh() -> Any:
            return actor_cls.remote(fn, self.initializer, self.initargs)

        tasks: Deque[_Task] = collections.deque(_Task(i, job) for i, job in enumerate(jobs))
        running: dict[Any, tuple[Any, _Task]] = {}
        for _ in range(min(n, len(jobs))):
            actor, task = fresh(), tasks.popleft()
            running[actor.run.remote(task.job)] = (actor, task)
        return self._collect(running, tasks, fresh)

    @staticmethod
    def _collect(running: dict[Any, tuple[Any, _Task]], tasks: Deque[_Task], fresh: Callable[[], Any]) \
            -> Iterator[Pair]:
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                actor, task = running.pop(done[0])
                try:
                    result = ray.get(done[0])
                except RayTaskError as exc:  # the task itself raised past the guard: a bug, not a lost worker
                    yield task.job, RuntimeError(str(exc).splitlines()[0])
                except RayError as exc:  # the actor died: killed, out of memory, node lost, native crash
                    _kill(actor)
                    actor = None
                    task.attempts += 1
                    if task.attempts < MAX_ATTEMPTS:
                        tasks.appendleft(task)
                    else:
                        yield task.job, WorkerLost(type(exc).__name__)
                else:
                    yield task.job, result
                if tasks:
                    actor = actor or fresh()
                    task = tasks.popleft()
                    running[actor.run.remote(task.job)] = (actor, task)
                elif actor is not None:
                    _kill(actor)  # free its CPU (and memory) for other work on the cluster
        finally:
            for actor, _ in running.values():
                _kill(actor)


def _kill(actor: Any) -> None:
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone
        pass


def make_executor(kind: str, workers: int | None, initializer: Callable[..., None],
                  initargs: tuple = (), in_process: bool = False) -> Executor:
    if kind == "local":
        return LocalExecutor(workers if workers is not None else (os.cpu_count() or 1), initializer, initargs,
                             in_process=in_process and (workers or 1) == 1)
    if kind == "ray":
        return RayExecutor(workers, initializer, initargs)
    raise UserError(f"unknown executor {kind!r} (choose from: local, ray)")
