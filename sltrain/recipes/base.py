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
    sltrain evaluate:  recipe.run_evaluation(checkpoint_path, split, out_dir) -> summary dict

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
* `preflight` runs on rank 0 only under torchrun (the others get its outcome);
  keep state the other ranks need out of it. Evaluation and `checkpoint_saved`
  run on rank 0 only; the other ranks wait for them without a deadline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Literal

from sldata.errors import UserError

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

    # --- evaluation command -----------------------------------------------------------
    def default_eval_split(self) -> str:
        """The split `sltrain evaluate` scores when `--split` is not given."""
        return "test"

    def run_evaluation(self, checkpoint_path: Path, split: str, out_dir: Path) -> dict[str, Any]:
        """`sltrain evaluate`: score a checkpoint on a split, write predictions, return a summary."""
        raise UserError(f"recipe {self.name!r} has no evaluation command")
