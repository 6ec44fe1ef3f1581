"""THE training loop, shared by every recipe (see sltrain.recipes.base for the contract).

Plain PyTorch: seeding, DataLoader with a resumable DistributedSampler, DDP under
torchrun, optional torch.compile, bf16 autocast on CUDA (fp32 on CPU), gradient
accumulation and clipping, warm-up + cosine/linear schedule, atomic checkpoints
with `resume: auto`, CSV + TensorBoard metrics, progress through the
sldata.progress protocol. The library never prints: messages go to `log`.

`_train` reads top to bottom, one function per phase: set-up (`_prepare`: out_dir,
input validation, config; `_setup`: model, optimizer, schedule), resume (`_resume`),
the data (`_Batches`), then each step (`_step`), evaluation (`_evaluate`, which also
writes best.pt) and saving (`_save`); every checkpoint's payload comes from `_payload`.

Under torchrun, rank 0 alone locks `out_dir`, validates the input and resolves the
checkpoint to resume, then shares the outcome; it alone evaluates and writes,
while the other ranks wait without a deadline (`sltrain.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from schemas.config import OptimConfig, TrainConfig
from sldata.errors import UserError
from sldata.io import output_lock
from sldata.progress import NullProgress, Progress

from . import checkpoint as ckpt
from . import distributed as D
from .config import save_resolved
from .metrics import MetricsLogger
from .recipes import build_recipe
from .recipes.base import Recipe


class InputInvalid(UserError):
    """The recipe's input failed validation: training refused; `report` holds the findings."""

    def __init__(self, report: Any):
        errors = report.errors
        super().__init__(f"input failed validation with {len(errors)} error(s); refusing to train")
        self.report = report


class MainFailed(UserError):
    """Raised on ranks other than 0 when rank 0 refused the run; rank 0 has reported why.

    `code` is the exit code rank 0 uses (1: input failed validation, 2: unusable).
    """

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class TrainResult:
    out_dir: Path
    recipe: str
    steps: int
    resumed_from: Path | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    samples_per_s: float | None = None
    sample_unit: str = "samples"
    device: str = "cpu"
    world_size: int = 1
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        for k in ("out_dir", "resumed_from", "last_checkpoint", "best_checkpoint"):
            d[k] = None if d[k] is None else str(d[k])
        return d


# --- per-sample seeding ---------------------------------------------------------------

def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(1)[0])


@dataclass(frozen=True)
class ItemFailed:
    """An item that could not be read: its one-line message travels to the training process.

    A DataLoader worker's exception reaches the main process re-built from the
    worker's traceback text (a many-line message, or a RuntimeError); returned as
    a value instead, the message arrives as the dataset wrote it.
    """

    message: str


class SeededItems(Dataset):
    """Seeds the global RNGs from (seed, epoch, index) before each item.

    Augmentation then depends only on which sample is drawn in which epoch, not on
    the worker that loads it or on whether the run was resumed mid-epoch. In the
    main process (num_workers=0) the caller's RNG state is restored afterwards.

    A UserError (e.g. `sldata.errors.DataError` from `sldata.io.reading`) or an
    OSError (an h5py read the dataset did not wrap) becomes an `ItemFailed`.
    """

    def __init__(self, dataset: Dataset, seed: int, files: tuple[str, ...] = ()):
        self.dataset = dataset
        self.seed = seed
        self.files = files

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, epoch = key
        s = sample_seed(self.seed, epoch, index)
        with ckpt.rng_kept() if get_worker_info() is None else contextlib.nullcontext():
            random.seed(s)
            np.random.seed(s)
            torch.default_generator.manual_seed(s)
            try:
                return self.dataset[index]
            except UserError as exc:
                return ItemFailed(worker_message(str(exc)))
            except OSError as exc:
                where = ", ".join(self.files) or "training data"
                return ItemFailed(f"{where}: cannot read training item {index}: {exc}; "
                                  f"`sldata validate --deep` names the damaged video")


class FailFastCollate:
    """The recipe's collate, except that a batch holding an `ItemFailed` is that ItemFailed."""

    def __init__(self, collate: Callable[[list[Any]], Any] | None):
        self.collate = collate or default_collate

    def __call__(self, items: list[Any]) -> Any:
        failed = next((x for x in items if isinstance(x, ItemFailed)), None)
        return failed if failed is not None else self.collate(items)


def worker_message(message: str) -> str:
    """The original one-line message of an exception a DataLoader worker re-raised here.

    torch rebuilds it as `Caught X in DataLoader worker process N. Original
    Traceback ...`, with the worker's message on the last line after `module.X: `.
    """
    if "in DataLoader worker process" not in message:
        return message
    last = message.strip().splitlines()[-1]
    head, sep, rest = last.partition(": ")
    return rest if sep and " " not in head else last


@contextlib.contextmanager
def eval_read_errors(recipe: Recipe) -> Iterator[None]:
    """Evaluation data that cannot be read, also inside a DataLoader worker, is one line naming it
    (periodic evaluation and `sltrain evaluate` alike)."""
    try:
        yield
    except UserError as exc:  # e.g. a DataError its DataLoader's worker re-raised
        raise UserError(worker_message(str(exc))) from None
    except OSError as exc:  # a read the dataset did not wrap, re-raised from a worker
        if "in DataLoader worker process" not in str(exc):
            raise
        where = ", ".join(str(p) for p in recipe.data_files()) or "evaluation data"
        raise UserError(f"{where}: cannot read evaluation data: {worker_message(str(exc))}") from None


# --- optimizer and schedule ---------------------------------------------------------

def build_optimizer(cfg: OptimConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Multiplier of `lr` for optimizer step `step` (0-based): linear warm-up, then decay."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(1, max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    decay = 0.5 * (1 + math.cos(math.pi * t)) if cfg.schedule == "cosine" else 1 - t
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * decay


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg, max_steps))


# --- helpers -----------------------------------------------------------------------------

def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        out = [to_device(v, device) for v in batch]
        return type(batch)(out) if not hasattr(batch, "_fields") else type(batch)(*out)
    return batch


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


def _scalar(v: Any) -> float:
    return float(v.detach().float().item()) if isinstance(v, torch.Tensor) else float(v)


def resolve_resume(resume: Any, out_dir: Path) -> Path | None:
    if resume == "auto":
        return ckpt.find_latest(out_dir)
    if resume == "never":
        if ckpt.list_step_checkpoints(out_dir):
            raise UserError(f"{out_dir} already holds checkpoints; use trainer.resume=auto to continue "
                            "or choose a new trainer.out_dir")
        return None
    return Path(resume)


# --- the loop ---------------------------------------------------------------------------

def train(cfg: TrainConfig, *, progress: Progress | None = None,
          log: Callable[[str], None] | None = None) -> TrainResult:
    """Run `cfg`'s recipe to `trainer.max_steps`, resuming if asked; rank 0 writes all outputs."""
    info = D.setup(cfg.trainer.device, cfg.trainer.dist_timeout_s)
    try:
        bar = progress if progress is not None and info.is_main else NullProgress()  # one bar, rank 0's
        with D.torch_threads(cfg.trainer.threads), contextlib.ExitStack() as held:  # held: rank 0's out_dir lock
            return _train(cfg, info, bar, log if info.is_main and log else (lambda _m: None), held)
    finally:
        D.teardown()


def make_out_dir(out: Path) -> None:
    """`trainer.out_dir` as a directory this process can write, or a one-line UserError naming it."""
    if out.exists() and not out.is_dir():
        raise UserError(f"trainer.out_dir {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise UserError(f"trainer.out_dir {out}: {blocker} is a file, not a directory") from None
        raise UserError(f"trainer.out_dir {out}: cannot create it: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"trainer.out_dir {out}: not writable: permission denied")


def _prepare_main(recipe: Recipe, cfg: TrainConfig, out: Path, held: contextlib.ExitStack) -> Path | None:
    """Rank 0's start: out_dir locked, input validated, checkpoint to resume found, config saved."""
    make_out_dir(out)
    held.enter_context(output_lock(out, "trainer.out_dir", inside=True))
    report = recipe.preflight()  # the validator (and its pool) runs once, in rank 0 only
    if report is not None and report.errors:
        raise InputInvalid(report)
    resume_from = resolve_resume(cfg.trainer.resume, out)
    ckpt.clean_temporaries(out)
    save_resolved(cfg, out / "config.yaml")
    return resume_from


def _prepare(recipe: Recipe, cfg: TrainConfig, info: D.DistInfo, out: Path,
             held: contextlib.ExitStack) -> Path | None:
    """`_prepare_main` on rank 0, its outcome shared: the other ranks validate nothing and
    stop (MainFailed) when rank 0 refuses the run."""
    if not info.is_main:
        kind, value, code = D.share_from_main(None, info)
        if kind == "failed":
            raise MainFailed(value, code)
        return value
    try:
        resume_from = _prepare_main(recipe, cfg, out, held)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, UserError) else f"rank 0 failed ({type(exc).__name__})"
        D.share_from_main(("failed", message, 1 if isinstance(exc, InputInvalid) else 2), info)
        raise
    D.share_from_main(("ok", resume_from, 0), info)
    return resume_from


# --- the phases of a run, in the order they happen ------------------------------------------

@dataclass
class _Run:
    """What the phases share: the recipe, the model and its optimizer, and where the run is."""

    cfg: TrainConfig
    info: D.DistInfo
    recipe: Recipe
    out: Path
    log: Callable[[str], None]
    model: torch.nn.Module  # the plain module: evaluation and checkpoints use it
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    prog: ckpt.TrainProgress = field(default_factory=ckpt.TrainProgress)


def _train(cfg: TrainConfig, info: D.DistInfo, progress: Progress, log: Callable[[str], None],
           held: contextlib.ExitStack) -> TrainResult:
    t = cfg.trainer
    recipe: Recipe = build_recipe(cfg)
    recipe.device = info.device
    resume_from = _prepare(recipe, cfg, info, Path(t.out_dir), held)
    run = _setup(cfg, info, recipe, log)
    _resume(run, resume_from)
    batches = _Batches(run)
    run_model = D.wrap_model(torch.compile(run.model) if t.compile else run.model, info, t.find_unused_parameters)
    autocast = autocast_for(t.precision, info.device)
    metrics = MetricsLogger(run.out, enabled=info.is_main, tensorboard=t.tensorboard, resume_step=run.prog.step)
    result = TrainResult(out_dir=run.out, recipe=cfg.recipe, steps=run.prog.step, resumed_from=resume_from,
                         data=batches.summary, sample_unit=recipe.sample_unit, device=str(info.device),
                         world_size=info.world_size, rank=info.rank)
    window = _Window(f"{recipe.sample_unit}_per_s")
    batches.start()
    run.model.train()
    progress.start(f"{cfg.recipe} training", total=t.max_steps, unit="steps")
    if run.prog.step:
        progress.advance(run.prog.step)
    try:
        while run.prog.step < t.max_steps:
            _step(run, run_model, batches, autocast, window)
            progress.advance(1)
            if run.prog.step % t.log_every == 0 or run.prog.step == t.max_steps:
                row = window.close(run)
                metrics.log("train", run.prog.step, row)
                result.last_metrics = row
                progress.advance(0, loss=f"{row['loss']:.4f}",
                                 **{window.rate_key.replace('_per_s', '/s'): f"{row[window.rate_key]:.0f}"})
            if t.eval_every and run.prog.step % t.eval_every == 0:
                _evaluate(run, autocast, result, metrics)
            if run.prog.step % t.save_every == 0 or run.prog.step == t.max_steps:
                _save(run)
                result.last_checkpoint = ckpt.step_path(run.out, run.prog.step)
                window.start = time.perf_counter()  # checkpoint time is not data wait nor throughput
    finally:
        progress.finish()
        metrics.close()
    return _finish(run, result, window)


def _setup(cfg: TrainConfig, info: D.DistInfo, recipe: Recipe, log: Callable[[str], None]) -> _Run:
    """Set-up: the model (seeded alike on every rank; DDP also broadcasts it), optimizer and schedule."""
    seed_everything(cfg.trainer.seed)
    model = recipe.build_model().to(info.device)
    params = list(recipe.trainable_parameters(model))
    if not params:
        raise UserError(f"recipe {cfg.recipe!r}: the model has no trainable parameters")
    optimizer = build_optimizer(cfg.optim, params)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.trainer.max_steps)
    return _Run(cfg, info, recipe, Path(cfg.trainer.out_dir), log, model, params, optimizer, scheduler)


def _resume(run: _Run, resume_from: Path | None) -> None:
    """Resume: weights, optimizer, schedule, position and each rank's RNG from the checkpoint;
    a fresh run gives every rank but 0 its own random stream."""
    t, info = run.cfg.trainer, run.info
    if resume_from is None:
        if info.rank:
            seed_everything(t.seed + 7919 * info.rank)
        return
    state = ckpt.load_checkpoint(resume_from)
    if state.get("recipe") != run.cfg.recipe:
        raise UserError(f"{resume_from}: checkpoint of recipe {state.get('recipe')!r}, config is {run.cfg.recipe!r}")
    ckpt.load_weights(run.recipe, run.model, state, resume_from)
    try:
        run.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"{resume_from}: does not match this config's model ({exc})") from None
    run.scheduler.load_state_dict(state["scheduler"])
    run.prog = ckpt.TrainProgress.from_dict(state["progress"])
    rng = ckpt.rank_rng_state(state, info.rank, info.world_size)
    if rng is not None:  # each rank continues its own random stream (dropout, ...)
        ckpt.set_rng_state(rng)
    else:  # saved by a run with another number of processes: not an exact continuation
        seed_everything(t.seed + 7919 * info.rank + run.prog.step)
    run.log(f"resumed from {resume_from} at step {run.prog.step}")


class _Batches:
    """The training batches from where the run stands: epochs of a resumable sampler, positioned
    at the checkpoint's (epoch, batch); `next()` also moves the run's progress."""

    def __init__(self, run: _Run):
        t, recipe = run.cfg.trainer, run.recipe
        dataset = recipe.train_dataset()
        self.summary = recipe.data_summary()
        if self.summary:
            run.log("data: " + ", ".join(f"{k} {v}" for k, v in self.summary.items()))
        items = SeededItems(dataset, t.seed, tuple(str(p) for p in recipe.data_files()))
        self.sampler = D.ResumableSampler(items, run.info, shuffle=True, seed=t.seed)
        self.per_epoch = self.sampler.num_samples // t.batch_size
        if self.per_epoch == 0:
            raise UserError(f"the training set has {len(items)} {recipe.sample_unit} "
                            f"({self.sampler.num_samples} per process), fewer than trainer.batch_size={t.batch_size}")
        loader_gen = torch.Generator().manual_seed(t.seed)  # worker seeds never touch the global RNG
        self.loader = DataLoader(items, batch_size=t.batch_size, sampler=self.sampler, num_workers=t.num_workers,
                                 collate_fn=FailFastCollate(recipe.collate_fn()), drop_last=True,
                                 generator=loader_gen, pin_memory=run.info.device.type == "cuda",
                                 persistent_workers=False)
        self.batch_size = t.batch_size
        self.epoch, self.pos = run.prog.epoch, run.prog.batch_in_epoch
        self.batches: Iterator[Any] = iter(())

    def start(self) -> None:
        """Position the sampler where the run stands (the next epoch when it stood at an epoch's end)."""
        if self.pos >= self.per_epoch:
            self.epoch, self.pos = self.epoch + 1, 0
        self.sampler.set_position(self.epoch, self.pos * self.batch_size)
        self.batches = iter(self.loader)

    def next(self) -> Any:
        if self.pos >= self.per_epoch:
            self.epoch, self.pos = self.epoch + 1, 0
            self.sampler.set_position(self.epoch, 0)
            self.batches = iter(self.loader)
        self.pos += 1
        batch = next(self.batches)
        if isinstance(batch, ItemFailed):
            raise UserError(batch.message)
        return batch


class _Window:
    """Metrics of the steps since the last log line, averaged over them and over ranks."""

    def __init__(self, rate_key: str):
        self.rate_key = rate_key
        self.total_samples, self.total_time = 0, 0.0
        self.lr = 0.0
        self.restart()

    def restart(self) -> None:
        self.values: dict[str, list] = {}
        self.wait, self.samples, self.start = 0.0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, metrics: dict[str, Any]) -> None:
        self.values.setdefault("loss", []).append(loss.detach())
        for k, v in metrics.items():
            self.values.setdefault(k, []).append(v.detach() if isinstance(v, torch.Tensor) else v)

    def close(self, run: _Run) -> dict[str, float]:
        """The log row of this window (NaN/inf loss: a UserError); starts the next window."""
        row = {k: sum(_scalar(v) for v in vs) / len(vs) for k, vs in self.values.items()}
        row = D.mean_across(row, run.info)
        if not math.isfinite(row["loss"]):
            raise UserError(f"loss became {row['loss']} at step {run.prog.step}; lower optim.lr or check the data")
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        row.update({"lr": self.lr, self.rate_key: self.samples / elapsed, "data_wait": min(1.0, self.wait / elapsed)})
        self.total_samples += self.samples
        self.total_time += elapsed
        self.restart()
        return row


def _step(run: _Run, run_model: torch.nn.Module, batches: _Batches, autocast: Callable, window: _Window) -> None:
    """Step: `grad_accum_steps` micro-batches forward and backward (DDP syncs on the last), clip,
    one optimizer and schedule step; the run's progress moves with it."""
    t, info = run.cfg.trainer, run.info
    run.optimizer.zero_grad(set_to_none=True)
    for micro in range(t.grad_accum_steps):
        tw = time.perf_counter()
        batch = batches.next()
        window.wait += time.perf_counter() - tw
        batch = to_device(batch, info.device)
        last = micro == t.grad_accum_steps - 1
        sync = contextlib.nullcontext() if last or not info.distributed else run_model.no_sync()
        with sync:
            with autocast():
                loss, step_metrics = run.recipe.training_step(run_model, batch)
            (loss / t.grad_accum_steps).backward()
        window.add(loss, step_metrics)
    if run.cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.params, run.cfg.optim.grad_clip)
    window.lr = run.optimizer.param_groups[0]["lr"]
    run.optimizer.step()
    run.scheduler.step()
    prog = run.prog
    prog.step += 1
    prog.epoch, prog.batch_in_epoch = batches.epoch, batches.pos
    n = t.batch_size * t.grad_accum_steps * info.world_size
    prog.samples_seen += n
    window.samples += n


def _evaluate(run: _Run, autocast: Callable, result: TrainResult, metrics: MetricsLogger) -> None:
    """Evaluate (rank 0; the others wait without a deadline): the recipe's metrics logged, and
    `best.pt` written when they are the best so far."""
    recipe, model = run.recipe, run.model
    if run.info.is_main:
        model.eval()
        try:
            with eval_read_errors(recipe), ckpt.rng_kept(), torch.no_grad(), autocast():
                values = {k: float(v) for k, v in recipe.evaluate(model).items()}  # RNG: training streams untouched
        finally:
            model.train()
        if values:
            metrics.log("eval", run.prog.step, values)
            result.eval_metrics = values
            key, prog = recipe.best_metric, run.prog
            if key is not None and key in values:
                v = values[key]
                if prog.best_value is None or (v > prog.best_value if recipe.best_mode == "max" else v < prog.best_value):
                    prog.best_value, prog.best_step = v, prog.step
                    _write_checkpoint(run, ckpt.best_path(run.out), _payload(run, metrics=values))
    D.wait_for_main()  # the other ranks wait as long as evaluation takes


def _save(run: _Run) -> None:
    """Save: a resumable step checkpoint holding every rank's RNG stream; older ones pruned."""
    rngs = D.gather_to_main(ckpt.rng_state(), run.info)  # every rank's own stream, in rank order
    if run.info.is_main:
        assert rngs is not None
        _write_checkpoint(run, ckpt.step_path(run.out, run.prog.step), _payload(run, rngs=rngs))
    D.wait_for_main()
    if run.info.is_main:
        ckpt.prune(run.out, run.cfg.trainer.keep_last)


def _payload(run: _Run, *, rngs: list[Any] | None = None, metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """THE checkpoint payload. With `rngs` (step checkpoints) it holds the training state a resume
    needs (optimizer, schedule, RNG streams); best.pt holds the weights and the `metrics` that made it best."""
    payload: dict[str, Any] = {"recipe": run.cfg.recipe, "model": run.recipe.model_state_for_checkpoint(run.model)}
    if rngs is not None:
        payload.update({"optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict()})
    payload["progress"] = run.prog.to_dict()
    if rngs is not None:
        payload.update({"rng": rngs[0], "rng_ranks": rngs})
    payload.update({"extra": run.recipe.checkpoint_extra(), "config": run.cfg.model_dump(mode="json")})
    if metrics is not None:
        payload["metrics"] = metrics
    return payload


def _write_checkpoint(run: _Run, path: Path, payload: dict[str, Any]) -> None:
    ckpt.save_checkpoint(path, payload)
    run.recipe.checkpoint_saved(path, run.model)


def _finish(run: _Run, result: TrainResult, window: _Window) -> TrainResult:
    """The run's summary: steps done, last and best checkpoints, mean throughput."""
    result.steps = run.prog.step
    if result.last_checkpoint is None and ckpt.list_step_checkpoints(run.out):
        result.last_checkpoint = ckpt.list_step_checkpoints(run.out)[-1][1]
    if ckpt.best_path(run.out).is_file():
        result.best_checkpoint = ckpt.best_path(run.out)
    result.samples_per_s = window.total_samples / window.total_time if window.total_time else None
    return result
