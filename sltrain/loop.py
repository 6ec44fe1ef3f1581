"""THE training loop, shared by every recipe (see sltrain.recipes.base for the contract).

Plain PyTorch: seeding, DataLoader with a resumable DistributedSampler, DDP under
torchrun, optional torch.compile, bf16 autocast on CUDA (fp32 on CPU), gradient
accumulation and clipping, warm-up + cosine/linear schedule, atomic checkpoints
with `resume: auto`, CSV + TensorBoard metrics, progress through the
sldata.progress protocol. The library never prints: messages go to `log`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from schemas.config import OptimConfig, TrainConfig
from sldata.errors import UserError
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


class SeededItems(Dataset):
    """Seeds the global RNGs from (seed, epoch, index) before each item.

    Augmentation then depends only on which sample is drawn in which epoch, not on
    the worker that loads it or on whether the run was resumed mid-epoch. In the
    main process (num_workers=0) the caller's RNG state is restored afterwards.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, epoch = key
        s = sample_seed(self.seed, epoch, index)
        in_main = get_worker_info() is None
        if in_main:
            saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(s)
        np.random.seed(s)
        torch.default_generator.manual_seed(s)
        try:
            return self.dataset[index]
        finally:
            if in_main:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])


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
    info = D.setup(cfg.trainer.device)
    threads = torch.get_num_threads()
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    try:
        bar = progress if progress is not None and info.is_main else NullProgress()  # one bar, rank 0's
        return _train(cfg, info, bar, log if info.is_main and log else (lambda _m: None))
    finally:
        torch.set_num_threads(threads)
        D.teardown()


def _train(cfg: TrainConfig, info: D.DistInfo, progress: Progress, log: Callable[[str], None]) -> TrainResult:
    t = cfg.trainer
    out = Path(t.out_dir)
    recipe: Recipe = build_recipe(cfg)
    recipe.device = info.device

    report = recipe.preflight()
    if report is not None and report.errors:
        raise InputInvalid(report)

    resume_from = resolve_resume(t.resume, out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.clean_temporaries(out)
        save_resolved(cfg, out / "config.yaml")

    seed_everything(t.seed)  # same init on every rank; DDP also broadcasts it
    model = recipe.build_model().to(info.device)
    params = list(recipe.trainable_parameters(model))
    if not params:
        raise UserError(f"recipe {cfg.recipe!r}: the model has no trainable parameters")
    optimizer = build_optimizer(cfg.optim, params)
    scheduler = build_scheduler(optimizer, cfg.optim, t.max_steps)
    prog = ckpt.TrainProgress()
    if resume_from is not None:
        state = ckpt.load_checkpoint(resume_from)
        if state.get("recipe") != cfg.recipe:
            raise UserError(f"{resume_from}: checkpoint of recipe {state.get('recipe')!r}, config is {cfg.recipe!r}")
        try:
            recipe.load_model_state(model, state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"{resume_from}: does not match this config's model ({exc})") from None
        scheduler.load_state_dict(state["scheduler"])
        prog = ckpt.TrainProgress.from_dict(state["progress"])
        if info.is_main:
            ckpt.set_rng_state(state["rng"])
        else:
            seed_everything(t.seed + 7919 * info.rank + prog.step)
        log(f"resumed from {resume_from} at step {prog.step}")
    elif info.rank:
        seed_everything(t.seed + 7919 * info.rank)

    dataset = recipe.train_dataset()
    summary = recipe.data_summary()
    if summary:
        log("data: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    items = SeededItems(dataset, t.seed)
    sampler = D.ResumableSampler(items, info, shuffle=True, seed=t.seed)
    per_epoch = sampler.num_samples // t.batch_size
    if per_epoch == 0:
        raise UserError(f"the training set has {len(items)} {recipe.sample_unit} "
                        f"({sampler.num_samples} per process), fewer than trainer.batch_size={t.batch_size}")
    loader_gen = torch.Generator().manual_seed(t.seed)  # worker seeds never touch the global RNG
    loader = DataLoader(items, batch_size=t.batch_size, sampler=sampler, num_workers=t.num_workers,
                        collate_fn=recipe.collate_fn(), drop_last=True, generator=loader_gen,
                        pin_memory=info.device.type == "cuda", persistent_workers=False)

    run_model: torch.nn.Module = model
    if t.compile:
        run_model = torch.compile(run_model)  # type: ignore[assignment]
    run_model = D.wrap_model(run_model, info, t.find_unused_parameters)
    autocast = autocast_for(t.precision, info.device)
    metrics = MetricsLogger(out, enabled=info.is_main, tensorboard=t.tensorboard, resume_step=prog.step)

    result = TrainResult(out_dir=out, recipe=cfg.recipe, steps=prog.step, resumed_from=resume_from,
                         data=summary, sample_unit=recipe.sample_unit, device=str(info.device),
                         world_size=info.world_size, rank=info.rank)
    rate_key = f"{recipe.sample_unit}_per_s"
    epoch, pos = prog.epoch, prog.batch_in_epoch
    if pos >= per_epoch:
        epoch, pos = epoch + 1, 0
    sampler.set_position(epoch, pos * t.batch_size)
    batches = iter(loader)

    def next_batch() -> Any:
        nonlocal batches, epoch, pos
        if pos >= per_epoch:
            epoch, pos = epoch + 1, 0
            sampler.set_position(epoch, 0)
            batches = iter(loader)
        pos += 1
        return next(batches)

    window: dict[str, list] = {}
    win_wait = 0.0
    win_samples = 0
    win_start = time.perf_counter()
    total_samples, total_time = 0, 0.0
    model.train()
    progress.start(f"{cfg.recipe} training", total=t.max_steps, unit="steps")
    if prog.step:
        progress.advance(prog.step)
    try:
        while prog.step < t.max_steps:
            optimizer.zero_grad(set_to_none=True)
            for micro in range(t.grad_accum_steps):
                tw = time.perf_counter()
                batch = next_batch()
                win_wait += time.perf_counter() - tw
                batch = to_device(batch, info.device)
                last = micro == t.grad_accum_steps - 1
                sync = contextlib.nullcontext() if last or not info.distributed else run_model.no_sync()
                with sync:
                    with autocast():
                        loss, step_metrics = recipe.training_step(run_model, batch)
                    (loss / t.grad_accum_steps).backward()
                window.setdefault("loss", []).append(loss.detach())
                for k, v in step_metrics.items():
                    window.setdefault(k, []).append(v.detach() if isinstance(v, torch.Tensor) else v)
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            prog.step += 1
            prog.epoch, prog.batch_in_epoch = epoch, pos
            n = t.batch_size * t.grad_accum_steps * info.world_size
            prog.samples_seen += n
            win_samples += n
            progress.advance(1)

            if prog.step % t.log_every == 0 or prog.step == t.max_steps:
                row = {k: sum(_scalar(v) for v in vs) / len(vs) for k, vs in window.items()}
                row = D.mean_across(row, info)
                if not math.isfinite(row["loss"]):
                    raise UserError(f"loss became {row['loss']} at step {prog.step}; lower optim.lr or check the data")
                elapsed = max(time.perf_counter() - win_start, 1e-9)
                row.update({"lr": lr, rate_key: win_samples / elapsed, "data_wait": min(1.0, win_wait / elapsed)})
                metrics.log("train", prog.step, row)
                result.last_metrics = row
                progress.advance(0, loss=f"{row['loss']:.4f}", **{rate_key.replace('_per_s', '/s'): f"{row[rate_key]:.0f}"})
                total_samples += win_samples
                total_time += elapsed
                window, win_wait, win_samples, win_start = {}, 0.0, 0, time.perf_counter()

            if t.eval_every and prog.step % t.eval_every == 0:
                _evaluate(recipe, model, autocast, prog, result, metrics, info, out)
            if prog.step % t.save_every == 0 or prog.step == t.max_steps:
                _save(recipe, model, optimizer, scheduler, prog, cfg, info, out, ckpt.step_path(out, prog.step))
                if info.is_main:
                    ckpt.prune(out, t.keep_last)
                result.last_checkpoint = ckpt.step_path(out, prog.step)
                win_start = time.perf_counter()  # checkpoint time is not data wait nor throughput
    finally:
        progress.finish()
        metrics.close()
    result.steps = prog.step
    if result.last_checkpoint is None and ckpt.list_step_checkpoints(out):
        result.last_checkpoint = ckpt.list_step_checkpoints(out)[-1][1]
    if ckpt.best_path(out).is_file():
        result.best_checkpoint = ckpt.best_path(out)
    result.samples_per_s = total_samples / total_time if total_time else None
    return result


def _payload(recipe: Recipe, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, prog: ckpt.TrainProgress, cfg: TrainConfig) -> dict[str, Any]:
    return {"recipe": cfg.recipe, "model": recipe.model_state_for_checkpoint(model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "progress": prog.to_dict(), "rng": ckpt.rng_state(), "extra": recipe.checkpoint_extra(),
            "config": cfg.model_dump(mode="json")}


def _save(recipe: Recipe, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
          prog: ckpt.TrainProgress, cfg: TrainConfig, info: D.DistInfo, out: Path, path: Path) -> None:
    if info.is_main:
        ckpt.save_checkpoint(path, _payload(recipe, model, optimizer, scheduler, prog, cfg))
        recipe.checkpoint_saved(path, model)
    D.barrier()


def _evaluate(recipe: Recipe, model: torch.nn.Module, autocast: Callable, prog: ckpt.TrainProgress,
              result: TrainResult, metrics: MetricsLogger, info: D.DistInfo, out: Path) -> None:
    if info.is_main:
        model.eval()
        rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        try:
            with torch.no_grad(), autocast():
                values = {k: float(v) for k, v in recipe.evaluate(model).items()}
        finally:
            model.train()
            random.setstate(rng[0])
            np.random.set_state(rng[1])
            torch.set_rng_state(rng[2])
        if values:
            metrics.log("eval", prog.step, values)
            result.eval_metrics = values
            key = recipe.best_metric
            if key is not None and key in values:
                v = values[key]
                better = prog.best_value is None or (v > prog.best_value if recipe.best_mode == "max"
                                                     else v < prog.best_value)
                if better:
                    prog.best_value, prog.best_step = v, prog.step
                    ckpt.save_checkpoint(ckpt.best_path(out), {
                        "recipe": recipe.cfg.recipe, "model": recipe.model_state_for_checkpoint(model),
                        "progress": prog.to_dict(), "extra": recipe.checkpoint_extra(),
                        "config": recipe.cfg.model_dump(mode="json"), "metrics": values})
                    recipe.checkpoint_saved(ckpt.best_path(out), model)
    D.barrier()
