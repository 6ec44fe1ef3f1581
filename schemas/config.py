"""Training configs (SPEC §6): the sections every recipe shares.

A config file is `recipe`, `data`, `model`, `optim`, `trainer`. `optim` and
`trainer` are the same for every recipe (`OptimConfig`, `TrainerConfig`); `data`
and `model` belong to the recipe. A recipe's config class subclasses `TrainConfig`
and narrows the two fields::

    class DPCConfig(TrainConfig):
        recipe: Literal["dpc"] = "dpc"
        data: DPCData
        model: DPCModel

and is named in the one recipe registry, `sltrain.recipes.RECIPES` (schemas never
import sltrain; the registry imports the class lazily).

Pieces several pose recipes share (`PoseTransformConfig`, `STGCNConfig`) live here
too, so the DPC checkpoint and the ISLR fine-tuning agree on them. No I/O here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, assignments re-validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OptimConfig(Strict):
    """Optimizer, learning-rate schedule and gradient clipping."""

    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = Field(0.9, ge=0, description="sgd only")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0 to lr")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="floor of the decay, as a fraction of lr")
    grad_clip: Optional[float] = Field(1.0, gt=0, description="max global grad norm; null disables")


class TrainerConfig(Strict):
    """Everything the shared loop needs: steps, batching, precision, checkpoints, logging."""

    out_dir: Path
    max_steps: int = Field(..., gt=0)
    batch_size: int = Field(..., gt=0, description="per process (per GPU under torchrun)")
    grad_accum_steps: int = Field(1, gt=0)
    eval_batch_size: Optional[int] = Field(
        None, gt=0, description="per process, for every evaluation (periodic and `sltrain evaluate`); "
        "null: the recipe's default (islr 32, sign_llava 8)")
    num_workers: int = Field(2, ge=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU")
    compile: bool = False
    threads: Optional[int] = Field(
        None, gt=0, description="torch CPU threads; null: torch's default. 1 is much faster for tiny CPU models")
    log_every: int = Field(10, gt=0)
    save_every: int = Field(500, gt=0)
    keep_last: int = Field(2, gt=0, description="step checkpoints kept besides best")
    eval_every: int = Field(0, ge=0, description="0: never")
    resume: Union[Literal["auto", "never"], Path] = Field(
        "auto", description="auto: newest complete checkpoint in out_dir; never; or a checkpoint path")
    tensorboard: bool = True
    find_unused_parameters: bool = False
    dist_timeout_s: float = Field(
        1800, gt=0, description="under torchrun: how long a training collective (gradient all-reduce) may wait "
        "for a rank before the run fails; waits for rank 0 (validation, evaluation, checkpoints) have no deadline")

    @field_validator("resume", mode="before")
    @classmethod
    def _resume(cls, v: Any) -> Any:
        if isinstance(v, str) and v not in ("auto", "never"):
            return Path(v)
        return v


class TrainConfig(Strict):
    """A whole run. Recipes subclass it to give `data` and `model` their own models."""

    recipe: str
    data: Strict
    model: Strict
    optim: OptimConfig = Field(default_factory=OptimConfig)
    trainer: TrainerConfig


# --- shared pose pieces ---------------------------------------------------------

class PoseTransformConfig(Strict):
    """Joint selection, normalisation and augmentation of pose windows (DPC and ISLR)."""

    joints: Literal["openhands27", "openhands75"] = "openhands27"
    coords: Literal[2, 3] = Field(2, description="x,y (OpenHands) or x,y,z")
    normalize: bool = Field(True, description="centre on the shoulders' midpoint, scale by shoulder width")
    frame_level: bool = Field(False, description="normalise per frame instead of once per window")
    shear: float = Field(0.0, ge=0, description="augmentation: max |shear| factor; 0 disables")
    rotation_deg: float = Field(0.0, ge=0, le=180, description="augmentation: max |rotation| in degrees")


class STGCNConfig(Strict):
    """The ST-GCN block encoder (sltrain.models.stgcn): one layer per entry of `channels`."""

    channels: list[int] = Field(default_factory=lambda: [64, 64, 128, 128, 256])
    temporal_kernel: int = Field(9, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[int]) -> list[int]:
        if not v or any(c <= 0 for c in v):
            raise ValueError("channels must be a non-empty list of positive integers")
        return v

    @model_validator(mode="after")
    def _odd(self) -> "STGCNConfig":
        if self.temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd, got {self.temporal_kernel}")
        return self
