"""Config of `recipe: dpc` — OpenHands-style Dense Predictive Coding on a pose h5 (SPEC §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from .config import PoseTransformConfig, STGCNConfig, Strict, TrainConfig


class DPCAugment(Strict):
    """Shear and rotation of each block's (x, y), OpenHands' distribution by default.

    Drawn per block (`per: block`): the blocks of one window get independent
    transforms, so no geometric fingerprint common to a window lets the contrastive
    task be solved by recognising the video rather than predicting its motion.
    """

    per: Literal["block", "window"] = Field(
        "block", description="draw a new shear/rotation for every block (OpenHands), or one per window")
    shear_std: float = Field(0.1, ge=0,
                             description="shear factor ~ N(0, shear_std) on one axis (OpenHands 0.1); 0: off")
    rotation_std: float = Field(0.1, ge=0, le=3.2,
                                description="rotation angle ~ N(0, rotation_std) radians (OpenHands 0.1); 0: off")
    normalize: Literal["window", "block"] = Field(
        "window", description="shoulder centre-and-scale once per window (data.transform.normalize), or per block")


class DPCData(Strict):
    """Windows of `num_seq` blocks x `seq_len` frames, every `downsample`-th frame of the video."""

    path: Path = Field(..., description="pose h5 (SPEC §3), e.g. written by `sldata pkl2h5`")
    num_seq: int = Field(7, ge=2, description="blocks per window")
    seq_len: int = Field(10, ge=1, description="frames per block (after downsampling)")
    downsample: int = Field(3, ge=1, description="keep every n-th frame")
    pred_step: int = Field(3, ge=1, description="future blocks to predict; < num_seq")
    short_videos: Literal["skip", "pad"] = Field(
        "skip", description="videos shorter than one window: leave them out, or repeat their FIRST frame before "
                            "them (the future blocks stay real video; videos shorter than the future are left out)")
    min_frames: int = Field(1, ge=1, description="videos with fewer frames are always left out")
    windows_per_video: int = Field(1, ge=1, description="random windows drawn from each video per epoch")
    validate_input: bool = Field(True, description="run sldata's validator on `path` before training")
    transform: PoseTransformConfig = Field(default_factory=PoseTransformConfig)
    augment: DPCAugment = Field(default_factory=DPCAugment)

    @model_validator(mode="after")
    def _steps(self) -> "DPCData":
        if self.pred_step >= self.num_seq:
            raise ValueError(f"pred_step ({self.pred_step}) must be smaller than num_seq ({self.num_seq})")
        return self

    @property
    def window_frames(self) -> int:
        """Frames of the source video one window spans."""
        return self.num_seq * self.seq_len * self.downsample


class DPCModel(Strict):
    encoder: STGCNConfig = Field(default_factory=STGCNConfig)
    gru_layers: int = Field(1, ge=1)
    similarity: Literal["cosine", "dot"] = Field(
        "cosine", description="InfoNCE score: cosine of L2-normalised embeddings, or the raw dot product (OpenHands)")
    temperature: float = Field(0.1, gt=0, description="InfoNCE logits are scores / temperature")
    negatives: Literal["batch", "same_video", "both"] = Field(
        "same_video", description="InfoNCE candidates of a prediction: every future block of the batch (OpenHands), "
                                  "only the future blocks of its own video, or the sum of both losses")


class DPCConfig(TrainConfig):
    recipe: Literal["dpc"] = "dpc"
    data: DPCData
    model: DPCModel = Field(default_factory=DPCModel)
