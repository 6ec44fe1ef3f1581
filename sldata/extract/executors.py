"""Where the per-video work runs: this process, a local process pool, or a Ray cluster.

An executor takes a picklable module-level function and a list of jobs and
yields `(job, result)` pairs as they finish. Each worker runs
`initializer(*initargs)` once, so expensive state (a MediaPipe graph) is built
once per worker and reused across its videos.

A worker that dies in the middle of a job (killed, out of memory, a native crash
in a decoder, a lost node) costs that job one attempt: the job is retried once on
a fresh worker, and if that one dies too the job yields `WorkerLost` and the run
goes on with the other jobs. The local pool (`sldata.pool`) and Ray share this
rule (`MAX_ATTEMPTS`).
"""

from __future__ import annotations

import collections
import os
from typing import Any, Callable, Deque, Iterator, Protocol, Sequence

from ..errors import UserError
from ..pool import MAX_ATTEMPTS, Pair, Pool, Task, WorkerLost, check_workers, default_workers


class Executor(Protocol):
    notices: list[str]

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]: ...


class LocalExecutor(Pool):
    """Worker processes on this machine: the toolkit's one pool (`sldata.pool`)."""

    def __init__(self, workers: int, initializer: Callable[..., None], initargs: tuple = (),
                 in_process: bool = False):
        super().__init__(workers, initializer, initargs, in_process=in_process, name="sldata-extract-worker")


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
        self.workers = workers if workers is None else check_workers(workers)
        self.initializer = initializer
        self.initargs = initargs
        self.notices: list[str] = []

    def imap_unordered(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[Pair]:
        import ray

        if not jobs:
            return (pair for pair in ())  # closable, like every other result
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

        tasks: Deque[Task] = collections.deque(Task(i, job) for i, job in enumerate(jobs))
        running: dict[Any, tuple[Any, Task]] = {}
        for _ in range(min(n, len(jobs))):
            actor, task = fresh(), tasks.popleft()
            running[actor.run.remote(task.job)] = (actor, task)
        return self._collect(running, tasks, fresh)

    @staticmethod
    def _collect(running: dict[Any, tuple[Any, Task]], tasks: Deque[Task], fresh: Callable[[], Any]) \
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
        return LocalExecutor(workers if workers is not None else default_workers(cap=os.cpu_count() or 1), initializer, initargs,
                             in_process=in_process and (workers or 1) == 1)
    if kind == "ray":
        return RayExecutor(workers, initializer, initargs)
    raise UserError(f"unknown executor {kind!r} (choose from: local, ray)")
