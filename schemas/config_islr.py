"""Config of `recipe: islr` — isolated sign recognition on a labeled pose dataset (SPEC §3.1, §6).

The encoder sections (`model.encoder`, `model.gru_layers`, `data.transform.joints`
/ `coords`) mean the same as in `recipe: dpc`, so a DPC checkpoint's architecture
can be compared key by key with this config before any weight is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from .config import PoseTransformConfig, STGCNConfig, Strict, TrainConfig


def _default_augment() -> PoseTransformConfig:
    # OpenHands' fine-tuning pipelines: shear std 0.1, rotation std 0.1 rad (~6 degrees).
    return PoseTransformConfig(shear=0.1, rotation_deg=6.0)


class ISLRData(Strict):
    """A pose h5 plus `labels.SPLIT.csv` files; a fixed number of frames per video."""

    pose: Path = Field(..., description="pose h5 holding every labeled video (SPEC §3)")
    labels: dict[str, Path] = Field(..., description="split -> labels.SPLIT.csv; 'train' is required")
    eval_split: Optional[str] = Field("dev", description="split scored every trainer.eval_every steps; null: none")
    num_frames: int = Field(60, ge=1, description="frames sampled per video (OpenHands: 6 blocks x 10)")
    seq_len: int = Field(10, ge=1, description="frames per encoder block; num_frames must be a multiple")
    train_sampling: Literal["jitter", "uniform"] = Field(
        "jitter", description="training frames: one random frame per segment (jitter) or segment centres")
    class_balanced: bool = Field(False, description="draw training classes equally often, not by frequency")
    validate_input: bool = Field(True, description="run sldata's validator on pose + labels before training")
    transform: PoseTransformConfig = Field(default_factory=_default_augment)

    @field_validator("labels")
    @classmethod
    def _has_train(cls, v: dict[str, Path]) -> dict[str, Path]:
        if "train" not in v:
            raise ValueError(f"needs a 'train' labels file (the class list comes from it), got splits {sorted(v)}")
        for split, path in v.items():
            if path.name != f"labels.{split}.csv":
                raise ValueError(f"the {split} labels file must be named labels.{split}.csv (SPEC §3.1), got {path.name}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ISLRData":
        if self.num_frames % self.seq_len:
            raise ValueError(f"num_frames ({self.num_frames}) must be a multiple of seq_len ({self.seq_len})")
        if self.eval_split is not None and self.eval_split not in self.labels:
            raise ValueError(f"eval_split {self.eval_split!r} has no labels file (allowed: {', '.join(self.labels)})")
        return self

    @property
    def num_seq(self) -> int:
        """Encoder blocks per video."""
        return self.num_frames // self.seq_len


class ISLRModel(Strict):
    """The DPC encoder (ST-GCN blocks + GRU aggregator) and a classification head."""

    init: Literal["scratch", "dpc"] = Field("scratch", description="random encoder, or one from `sltrain pretrain`")
    checkpoint: Optional[Path] = Field(None, description="DPC checkpoint (checkpoints/*.pt) for init: dpc")
    freeze_encoder: bool = Field(False, description="train only the head: a linear probe of the encoder")
    encoder: STGCNConfig = Field(default_factory=STGCNConfig)
    gru_layers: int = Field(1, ge=1)
    head_dropout: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _init(self) -> "ISLRModel":
        if self.init == "dpc" and self.checkpoint is None:
            raise ValueError("init: dpc needs model.checkpoint (a `sltrain pretrain` checkpoint)")
        if self.init == "scratch" and self.checkpoint is not None:
            raise ValueError("model.checkpoint is only read with init: dpc (set init: dpc or remove it)")
        return self


class ISLRConfig(TrainConfig):
    recipe: Literal["islr"] = "islr"
    data: ISLRData
    model: ISLRModel = Field(default_factory=ISLRModel)


#: Keys that fix the encoder's tensors: they must equal the DPC checkpoint's values.
ARCH_KEYS: tuple[str, ...] = ("model.encoder.channels", "model.encoder.temporal_kernel", "model.gru_layers",
                              "data.transform.joints", "data.transform.coords")
