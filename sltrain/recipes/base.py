"""The Recipe interface: a recipe adds only its data and its model.

The shared loop (`sltrain.loop.train`) owns everything else: device, seeding,
DataLoader + DistributedSampler, DDP, torch.compile, autocast, optimizer,
schedule, clipping, gradient accumulation, checkpoints (`sltrain.checkpoint`),
resume, metrics (`sltrain.metrics`), the progress bar. The call order is::

    recipe = MyRecipe(cfg)              # __init__: check flag combinations, raise UserError
    recipe.device = ...                 # set by the loop before anything else is called
    recipe.preflight()                  # validate inputs; a Report with errors stops the run
    model = recipe.build_model()        # on CPU; the loop moves it, compiles, wraps in DDP
    params = recipe.trainable_parameters(model)   # what the optimizer sees
    ds = recipe.train_dataset(); recipe.collate_fn()
    for each step:
        loss, metrics = recipe.training_step(model, batch)   # under autocast; batch on device
    every trainer.eval_every steps (rank 0):  recipe.evaluate(raw_model) -> {name: float}
    every trainer.save_every steps:  recipe.model_state_for_checkpoint(raw_model),
                                     recipe.checkpoint_extra(), then recipe.checkpoint_saved(path, raw_model)
    sltrain evaluate (`sltrain.evaluate`: device, threads, checkpoint, loader and files are its own):
        model = recipe.eval_model(state, path)   # the harness then loads the checkpoint's weights into it
        for batch in recipe.eval_loader(recipe.eval_dataset(split), recipe.eval_collate_fn()):
            records += recipe.predict(model, batch)          # under no_grad
        scores = recipe.score(records)                       # written with the records by the harness
        recipe.write_eval_report(records, scores, out_dir)   # optional further files

Rules for implementers:

* `training_step` receives the model as the loop wraps it (DDP / compiled): call
  `model(...)` (forward) rather than custom methods so DDP's gradient hooks fire.
  `evaluate` and the checkpoint hooks receive the plain, unwrapped module.
* Return metrics as floats or 0-d tensors; the loop averages them over
  `trainer.log_every` steps and logs them to CSV/TensorBoard next to loss and lr.
* Datasets may use the global `random` / `numpy` / `torch` RNGs freely: the loop
  reseeds them per sample from (seed, epoch, index), so augmentation is the same in
  every worker layout and after a resume.
* Everything in `checkpoint_extra()` must be plain Python (str, int, float, list,
  dict): checkpoints load with `torch.load(weights_only=True)`.
* Raise `sldata.errors.UserError` for bad input; never print or exit. Facts worth
  showing the user (e.g. "3 short videos skipped") go in `data_summary()`.
* A read failure inside a DataLoader worker (wrap h5py reads in
  `sldata.io.reading`, which raises `DataError`) reaches the user as its own
  one-line message, exit 2.
* Periodic `evaluate` and `sltrain evaluate` batch with `self.eval_loader(...)`
  (`trainer.eval_batch_size`, else `default_eval_batch_size`).
* `preflight` runs on rank 0 only under torchrun (the others get its outcome);
  keep state the other ranks need out of it. Evaluation and `checkpoint_saved`
  run on rank 0 only; the other ranks wait for them without a deadline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Literal

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    from schemas.config import TrainConfig
    from sldata.findings import Report


class Recipe:
    """Base class; override what your recipe needs (see the module docstring)."""

    #: recipe name as in the config's `recipe:` key
    name: ClassVar[str] = "base"
    #: what one dataset item is called in logs: throughput is logged as `<unit>_per_s`
    sample_unit: ClassVar[str] = "samples"
    #: batch size of evaluation when `trainer.eval_batch_size` is null
    default_eval_batch_size: ClassVar[int] = 32
    #: names of `sltrain evaluate`'s files in its output directory ({split}, {checkpoint}: the file's stem)
    eval_files: ClassVar[tuple[str, str]] = ("predictions.jsonl", "scores.json")
    #: key of `evaluate()`'s result that decides the best checkpoint (None: keep no best)
    best_metric: ClassVar[str | None] = None
    best_mode: ClassVar[Literal["max", "min"]] = "max"

    def __init__(self, cfg: "TrainConfig"):
        self.cfg = cfg
        self.device: "torch.device | None" = None

    # --- setup ------------------------------------------------------------------------
    def preflight(self) -> "Report | None":
        """Validate the inputs before any training; a Report with errors stops the run."""
        return None

    def build_model(self) -> "torch.nn.Module":
        raise NotImplementedError

    def trainable_parameters(self, model: "torch.nn.Module") -> Iterable["torch.nn.Parameter"]:
        """Parameters the optimizer updates; default: all that require grad."""
        return [p for p in model.parameters() if p.requires_grad]

    def train_dataset(self) -> "Dataset":
        raise NotImplementedError

    def collate_fn(self) -> Callable[[list[Any]], Any] | None:
        """None: torch's default collate."""
        return None

    def data_summary(self) -> dict[str, Any]:
        """Counts to show the user once data is built (videos used, padded, skipped...)."""
        return {}

    def data_files(self) -> list[Path]:
        """The files training items are read from, named when a read fails without saying where.

        Default: every path-valued key of the `data` section. Datasets should still
        wrap their reads in `sldata.io.reading(path, video)`, which names the video too.
        """
        return [v for v in dict(self.cfg.data).values() if isinstance(v, Path)]

    # --- training ---------------------------------------------------------------------
    def training_step(self, model: "torch.nn.Module", batch: Any) -> "tuple[torch.Tensor, dict[str, Any]]":
        """Forward one batch (already on `self.device`): (scalar loss, metrics)."""
        raise NotImplementedError

    def evaluate(self, model: "torch.nn.Module") -> dict[str, float]:
        """Metrics on held-out data, called every `trainer.eval_every` steps on rank 0."""
        return {}

    # --- checkpoints ------------------------------------------------------------------
    def checkpoint_extra(self) -> dict[str, Any]:
        """Plain data stored in every checkpoint (e.g. the ISLR class list)."""
        return {}

    def model_state_for_checkpoint(self, model: "torch.nn.Module") -> dict[str, Any]:
        """What of the model to save; sign_llava saves only its trainable parts."""
        return model.state_dict()

    def load_model_state(self, model: "torch.nn.Module", state: dict[str, Any]) -> None:
        """Inverse of `model_state_for_checkpoint` (used on resume)."""
        model.load_state_dict(state)

    def checkpoint_saved(self, path: Path, model: "torch.nn.Module") -> None:
        """Called on rank 0 after checkpoint `path` is written (sign_llava exports beside it)."""

    # --- evaluation (sltrain.evaluation runs these; see its docstring) -----------------
    @property
    def eval_batch_size(self) -> int:
        """`trainer.eval_batch_size`, or this recipe's default: every evaluation batches by it."""
        return self.cfg.trainer.eval_batch_size or self.default_eval_batch_size

    def eval_loader(self, dataset: "Dataset", collate: Callable[[list[Any]], Any] | None) -> Any:
        """The one evaluation DataLoader (periodic and `sltrain evaluate`): in order, eval batch size."""
        from torch.utils.data import DataLoader

        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, collate_fn=collate,
                          num_workers=min(self.cfg.trainer.num_workers, 2))

    def default_eval_split(self) -> str:
        """The split `sltrain evaluate` scores when `--split` is not given."""
        return "test"

    def eval_model(self, state: dict[str, Any], path: Path) -> "torch.nn.Module":
        """A model that checkpoint `state`'s weights go in (on CPU); UserError, naming `path`,
        when the checkpoint was made for another architecture. Default: `build_model()`."""
        return self.build_model()

    def eval_dataset(self, split: str) -> "Dataset":
        """The items of `split` to predict, in a stable order (called after `eval_model`)."""
        raise NotImplementedError

    def eval_collate_fn(self) -> Callable[[list[Any]], Any] | None:
        """Collate of `eval_dataset`'s items; default: the training collate."""
        return self.collate_fn()

    def predict(self, model: "torch.nn.Module", batch: Any) -> list[dict[str, Any]]:
        """One JSON-ready record per item of `batch` (a line of the predictions JSONL); under no_grad.
        A recipe without it has no `sltrain evaluate` (exit 2 saying so)."""
        raise NotImplementedError

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Metrics of all records of the split (the scores file), from the records alone."""
        raise NotImplementedError

    def write_eval_report(self, records: list[dict[str, Any]], scores: dict[str, Any],
                          out_dir: Path) -> dict[str, str]:
        """Further files beside predictions and scores (islr: per-class CSV, confusion matrix),
        each written atomically; returns {summary key: path}."""
        return {}
