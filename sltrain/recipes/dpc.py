"""`recipe: dpc` — self-supervised Dense Predictive Coding on a pose h5 (SPEC §6).

Adds only data (`PoseWindows`) and model (`DPC`); the loop does the rest.
"""

from __future__ import annotations

from typing import Any

import torch

from schemas.config_dpc import DPCConfig
from sldata.errors import UserError

from ..data.pose_windows import PoseWindows
from ..data.transforms import NUM_JOINTS
from ..models.dpc import DPC, info_nce, pretext_diagnostics
from .base import Recipe


class DPCRecipe(Recipe):
    name = "dpc"
    sample_unit = "windows"

    def __init__(self, cfg: DPCConfig):
        super().__init__(cfg)
        self.cfg: DPCConfig = cfg
        if cfg.trainer.eval_every:
            raise UserError("recipe dpc has no held-out evaluation: set trainer.eval_every=0")
        t = cfg.data.transform
        if t.shear or t.rotation_deg:
            raise UserError("data.transform.shear / rotation_deg are not used by recipe dpc: its augmentation is "
                            "data.augment (shear_std, rotation_std in radians, drawn per block as OpenHands); "
                            "set them there and leave data.transform.shear / rotation_deg at 0")
        self._data: PoseWindows | None = None

    def preflight(self) -> Any:
        """Validate the pose h5 with sldata's validator (metadata and shapes, not --deep)."""
        path = self.cfg.data.path
        if not path.is_file():
            raise UserError(f"data.path: {path}: no such pose file")
        if not self.cfg.data.validate_input:
            return None
        try:
            from sldata.validate import validate
        except ImportError:  # validator not installed in this build: train without it
            return None
        return validate(path)

    def build_model(self) -> torch.nn.Module:
        d = self.cfg.data
        return DPC(d.transform.coords, d.transform.joints, self.cfg.model, d.num_seq, d.pred_step)

    def train_dataset(self) -> PoseWindows:
        if self._data is None:
            self._data = PoseWindows(self.cfg.data, train=True)
        return self._data

    def data_summary(self) -> dict[str, Any]:
        d = self.train_dataset()
        a = self.cfg.data.augment
        return {**d.index.summary(), "windows/epoch": len(d), "window_frames": self.cfg.data.window_frames,
                "joints": NUM_JOINTS[self.cfg.data.transform.joints],
                "augment": f"per {a.per} (shear N(0, {a.shear_std}), rotation N(0, {a.rotation_std} rad))",
                "negatives": self.cfg.model.negatives}

    def training_step(self, model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
        pred, target = model(batch)
        m = self.cfg.model
        loss, top1 = info_nce(pred, target, m.temperature, m.similarity, m.negatives)
        diag = pretext_diagnostics(pred, target, m.similarity)
        return loss, {"top1": top1, "pretext_top1_video": diag["top1_video"], "pretext_top1_step": diag["top1_step"]}

    def checkpoint_extra(self) -> dict[str, Any]:
        d = self.cfg.data
        return {"in_channels": d.transform.coords, "joints": d.transform.joints,
                "encoder": self.cfg.model.encoder.model_dump(), "transform": d.transform.model_dump()}
