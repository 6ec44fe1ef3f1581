"""`recipe: islr` — isolated sign recognition on a labeled pose dataset (SPEC §3.1, §6).

Adds only data (`LabeledPoseDataset`) and model (`SignClassifier`: the DPC encoder
plus a head); the shared loop trains, checkpoints, resumes and logs. The class
list (sorted train labels) is stored in every checkpoint so `sltrain evaluate`
maps indices back to names without the train labels file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from schemas.config_islr import ARCH_KEYS, ISLRConfig
from sldata.errors import UserError

from ..checkpoint import load_checkpoint
from ..data.labeled_pose import ClassBalanced, LabeledPoseDataset, LabeledSplit, classes_from, collate, load_split
from ..data.transforms import PoseTransform
from ..models.classifier import SignClassifier, check_architecture, load_encoder
from . import islr_report as report
from .base import Recipe


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, k: int) -> torch.Tensor:
    """(B,) bool: the target is among the k best logits (targets of -1, unseen classes, never are)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == targets[:, None]).any(dim=1)


class ISLRRecipe(Recipe):
    name = "islr"
    sample_unit = "videos"
    best_mode = "max"

    def __init__(self, cfg: ISLRConfig):
        super().__init__(cfg)
        self.cfg: ISLRConfig = cfg
        d = cfg.data
        if cfg.trainer.eval_every and d.eval_split is None:
            raise UserError("trainer.eval_every needs data.eval_split (the split scored during training)")
        #: e.g. "dev_top1": the key of evaluate() that picks checkpoints/best.pt
        self.best_metric = f"{d.eval_split}_top1" if d.eval_split else None
        self._classes: list[str] | None = None
        self._train: LabeledPoseDataset | None = None
        self._eval: LabeledPoseDataset | None = None
        self._eval_classes: list[str] = []  # `sltrain evaluate`: the checkpoint's class list
        self._eval_split: LabeledPoseDataset | None = None
        self._warnings: list[Any] = []

    # --- data ----------------------------------------------------------------------------
    def preflight(self) -> Any:
        """Check files exist, then validate pose + labels with sldata's validator (errors stop the run)."""
        d = self.cfg.data
        if not d.pose.is_file():
            raise UserError(f"data.pose: {d.pose}: no such pose file")
        for split, path in d.labels.items():
            if not path.is_file():
                raise UserError(f"data.labels.{split}: {path}: no such labels file")
        if not d.validate_input:
            return None
        try:
            from sldata.validate import validate
        except ImportError:  # validator not in this build: the loaders still refuse bad labels
            return None
        report = validate(d.pose, labels=list(d.labels.values()))
        self._warnings = report.warnings
        return report

    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            self._classes = classes_from(self.cfg.data.labels["train"])
        return self._classes

    def transform(self, train: bool) -> PoseTransform:
        return PoseTransform(self.cfg.data.transform, train=train)

    def dataset(self, split: str, train: bool, classes: list[str] | None = None) -> LabeledPoseDataset:
        d = self.cfg.data
        if split not in d.labels:
            raise UserError(f"no labels file for split {split!r} in data.labels (have: {', '.join(d.labels)})")
        labeled: LabeledSplit = load_split(d.labels[split], classes or self.classes, split)
        if not labeled.keys:
            raise UserError(f"{d.labels[split]}: no labeled videos")
        return LabeledPoseDataset(d.pose, labeled, d.num_frames, self.transform(train),
                                  jitter=train and d.train_sampling == "jitter")

    def train_dataset(self) -> Any:
        if self._train is None:
            self._train = self.dataset("train", train=True)
        return ClassBalanced(self._train) if self.cfg.data.class_balanced else self._train

    def collate_fn(self) -> Any:
        return collate

    def data_summary(self) -> dict[str, Any]:
        ds = self._train or self.dataset("train", train=True)
        out: dict[str, Any] = {"train videos": len(ds), "classes": len(self.classes),
                               "frames/video": self.cfg.data.num_frames,
                               "sampling": "class-balanced" if self.cfg.data.class_balanced else "natural"}
        if self.cfg.model.init == "dpc":
            out["encoder"] = f"from {self.cfg.model.checkpoint}" + (" (frozen)" if self.cfg.model.freeze_encoder else "")
        if self._warnings:
            by_code: dict[str, list[Any]] = {}
            for f in self._warnings:
                by_code.setdefault(f.code, []).append(f)
            out["warnings"] = "; ".join(f"{c} x{len(fs)} (e.g. {fs[0].video or fs[0].file}: {fs[0].message})"
                                        for c, fs in by_code.items())
        return out

    # --- model ---------------------------------------------------------------------------
    def new_model(self, num_classes: int) -> SignClassifier:
        m, t = self.cfg.model, self.cfg.data.transform
        return SignClassifier(t.coords, t.joints, m.encoder, m.gru_layers, num_classes, self.cfg.data.seq_len,
                              m.head_dropout, freeze_encoder=m.freeze_encoder)

    def build_model(self) -> torch.nn.Module:
        model = self.new_model(len(self.classes))
        if self.cfg.model.init == "dpc":
            self.load_dpc(model, self.cfg.model.checkpoint)  # type: ignore[arg-type]
        return model

    def load_dpc(self, model: SignClassifier, path: Path) -> int:
        """Encoder weights from an `sltrain pretrain` checkpoint; refused whole unless everything fits."""
        state = load_checkpoint(path)
        if state.get("recipe") != "dpc":
            raise UserError(f"{path}: a checkpoint of recipe {state.get('recipe')!r}; model.init: dpc needs "
                            "one written by `sltrain pretrain` with recipe: dpc")
        check_architecture(self.cfg.model_dump(mode="json"), state.get("config") or {}, ARCH_KEYS, path)
        return load_encoder(model, state["model"], path)

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
        logits = model(batch["x"])
        loss = F.cross_entropy(logits.float(), batch["y"])
        return loss, {"top1": topk_correct(logits, batch["y"], 1).float().mean()}

    # --- evaluation ----------------------------------------------------------------------
    def _logits(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["x"].to(self.device or torch.device("cpu"))).float().cpu()

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        split = self.cfg.data.eval_split
        if split is None:
            return {}
        if self._eval is None:
            self._eval = self.dataset(split, train=False)
        lg = torch.cat([self._logits(model, b) for b in self.eval_loader(self._eval, collate)])
        y = torch.tensor(self._eval.split.targets)
        seen = y >= 0
        loss = F.cross_entropy(lg[seen], y[seen]).item() if seen.any() else float("nan")
        return {f"{split}_top1": topk_correct(lg, y, 1).float().mean().item(),
                f"{split}_top5": topk_correct(lg, y, 5).float().mean().item(),
                f"{split}_loss": loss}

    def checkpoint_extra(self) -> dict[str, Any]:
        d = self.cfg.data
        return {"classes": list(self.classes), "num_frames": d.num_frames, "seq_len": d.seq_len,
                "transform": d.transform.model_dump(mode="json")}

    # --- sltrain evaluate ------------------------------------------------------------------
    def default_eval_split(self) -> str:
        """`test` where a labels file exists for it, else the periodic eval split."""
        return "test" if "test" in self.cfg.data.labels else (self.cfg.data.eval_split or "train")

    def eval_model(self, state: dict[str, Any], path: Path) -> torch.nn.Module:
        """A classifier over the checkpoint's own class list, once its architecture matches the config's."""
        classes = (state.get("extra") or {}).get("classes")
        if not classes:
            raise UserError(f"{path}: no class list in the checkpoint")
        check_architecture(self.cfg.model_dump(mode="json"), state.get("config") or {},
                           (*ARCH_KEYS, "data.num_frames", "data.seq_len", "data.transform.normalize",
                            "data.transform.frame_level"), path)
        self._eval_classes = list(classes)
        return self.new_model(len(classes))

    def eval_dataset(self, split: str) -> LabeledPoseDataset:
        self._eval_split = self.dataset(split, train=False, classes=self._eval_classes)
        return self._eval_split

    def predict(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        probs = torch.softmax(self._logits(model, batch), dim=1).numpy()
        return report.records(self._eval_split.split, self._eval_classes, probs, batch["index"].numpy())

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return report.scores(records, self._eval_classes)

    def write_eval_report(self, records: list[dict[str, Any]], scores: dict[str, Any], out_dir: Path) -> dict[str, str]:
        return report.write_report(out_dir, records, self._eval_classes, scores["split"])
