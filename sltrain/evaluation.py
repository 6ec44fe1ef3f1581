"""`sltrain evaluate` as a library function: one harness, the recipe supplies prediction and scoring.

`evaluate(cfg, checkpoint, split, out)` does what every recipe's evaluation needs,
once: the device (`trainer.device`) and CPU threads (`trainer.threads`), the
checkpoint loaded and checked (a readable sltrain checkpoint of this config's
recipe, whose weights fit the model: exit 2 naming it otherwise), the split
(`--split`, else the recipe's default), the one evaluation DataLoader
(`trainer.eval_batch_size`), and the files: the predictions JSONL and the scores
JSON, each written atomically (`sldata.io`). The recipe supplies the model a
checkpoint fits (`eval_model`), the items (`eval_dataset`), one record per item
(`predict`), the metrics of all records (`score`) and any further report files
(`write_eval_report`).

Heavy modules (torch, the recipe's) are imported when `evaluate` runs, so
`import sltrain` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sldata.errors import UserError

if TYPE_CHECKING:
    from schemas.config import TrainConfig


def default_out_dir(cfg: "TrainConfig", split: str) -> Path:
    """Where a split's evaluation is written without `--out`: `trainer.out_dir/eval_SPLIT`."""
    return Path(cfg.trainer.out_dir) / f"eval_{split}"


def evaluate(cfg: "TrainConfig", checkpoint: str | Path, split: str | None = None,
             out: str | Path | None = None) -> dict[str, Any]:
    """Score `checkpoint` on `split` with `cfg`'s recipe; write predictions and scores under `out`.

    Returns the summary: the scores file's content plus the checkpoint's step and
    the paths of every file written.
    """
    import torch

    from sldata.io import dumps_json, write_bytes_atomic, write_json

    from . import checkpoint as ckpt
    from . import distributed as D
    from .loop import eval_read_errors
    from .recipes import build_recipe
    from .recipes.base import Recipe

    checkpoint = Path(checkpoint)
    recipe = build_recipe(cfg)
    if type(recipe).predict is Recipe.predict:
        raise UserError(f"recipe {cfg.recipe!r} has no evaluation command (it defines no predict/score)")
    recipe.device = D.setup(cfg.trainer.device).device
    try:
        split = split or recipe.default_eval_split()
        out_dir = Path(out) if out is not None else default_out_dir(cfg, split)
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(f"{out_dir}: exists and is not a directory (the evaluation's output directory)")
        state = ckpt.load_checkpoint(checkpoint)
        if state.get("recipe") != cfg.recipe:
            raise UserError(f"{checkpoint}: a checkpoint of recipe {state.get('recipe')!r}, not of this config's "
                            f"recipe {cfg.recipe!r}")
        with D.torch_threads(cfg.trainer.threads):
            model = recipe.eval_model(state, checkpoint)
            ckpt.load_weights(recipe, model, state, checkpoint)
            model.to(recipe.device).eval()
            records: list[dict[str, Any]] = []
            with eval_read_errors(recipe), torch.no_grad():
                for batch in recipe.eval_loader(recipe.eval_dataset(split), recipe.eval_collate_fn()):
                    records.extend(recipe.predict(model, batch))
        names = {"split": split, "checkpoint": checkpoint.stem}
        pred_path, scores_path = (out_dir / name.format(**names) for name in recipe.eval_files)
        write_bytes_atomic(pred_path, b"".join(dumps_json(r, indent=False) + b"\n" for r in records))
        scores = {"split": split, "checkpoint": str(checkpoint), **recipe.score(records),
                  "predictions": str(pred_path)}
        write_json(scores_path, scores)
        files = recipe.write_eval_report(records, scores, out_dir)
        step = (state.get("progress") or {}).get("step")
        return {**scores, "step": step, "scores": str(scores_path), **files}
    finally:
        D.teardown()
