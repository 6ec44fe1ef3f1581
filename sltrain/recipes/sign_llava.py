"""`recipe: sign_llava`: Sign_LLaVA projector pretraining, and its prediction and scoring for `sltrain evaluate`.

The recipe adds only data and model to the shared loop: clips of a v1/v2 feature
dataset (sltrain.data.features), a frozen causal LM with per-rep projectors
(sltrain.models.sign_llava). Checkpoints hold the projectors and the two video
marker embeddings only, plus a fingerprint of the frozen LM so a checkpoint is
never silently evaluated on another LM. Beside each checkpoint `X.pt` the same
weights are written as `X.upstream.pt`, the file upstream Sign_LLaVA's next stage
loads (`pretrained_projector_ckpt`). Before the first step rank 0 writes
`OUT_DIR/sample.txt`: the first training sample as the LM sees it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch

from sldata.errors import UserError
from sldata.io import write_bytes_atomic

from ..checkpoint import write_torch
from ..data.features import SKIP_OVERLONG, FeatureClips
from ..models import llm as llm_mod
from ..models.projector import upstream_state
from ..models.sign_llava import ChatSequenceBuilder, SequenceBuilder, SignLlava, move_batch, render_sample
from .base import Recipe

TINY_DIR = "tiny-random-llm"
SAMPLE_FILE = "sample.txt"
UPSTREAM_SUFFIX = ".upstream.pt"


class SignLlavaRecipe(Recipe):
    name: ClassVar[str] = "sign_llava"
    sample_unit: ClassVar[str] = "clips"
    best_metric: ClassVar[str | None] = "loss"
    best_mode = "min"
    default_eval_batch_size: ClassVar[int] = 8
    eval_files: ClassVar[tuple[str, str]] = ("predictions.{split}.{checkpoint}.jsonl", "scores.{split}.{checkpoint}.json")

    def __init__(self, cfg: Any):
        super().__init__(cfg)
        self.data, self.mcfg = cfg.data, cfg.model
        import importlib.util

        absent = [m for m in ("transformers", "tokenizers", "sacrebleu") if importlib.util.find_spec(m) is None]
        if absent:
            raise UserError(f"recipe sign_llava needs {', '.join(absent)}: pip install 'sldata[llava]'")
        if not Path(self.data.path).is_dir():
            raise UserError(f"data.path: {self.data.path} is not a directory")
        if self.mcfg.llm != llm_mod.TINY and not Path(self.mcfg.llm).is_dir():
            raise UserError(f"model.llm: {self.mcfg.llm} is not a local model directory "
                            f"(models are never downloaded; use '{llm_mod.TINY}' for a test run)")
        self._train: FeatureClips | None = None
        self._eval: FeatureClips | None = None
        self._tokenizer: Any = None
        self._llm_dir: Path | None = None
        self._fingerprint: str | None = None
        self._layout: str | None = None  # resolved data.layout, once the tokenizer is loaded
        self._eval_clips: FeatureClips | None = None  # `sltrain evaluate`: the split's clips
        self._stop: list[int] = []  # ... the token ids that end a generated translation
        self._shortened = 0  # ... samples whose context or video was shortened to fit

    # --- setup -------------------------------------------------------------------------
    def preflight(self) -> Any:
        """`sldata validate` (metadata only) on the train split, minus what the config handles.

        Findings about reps this run does not read are dropped, and with
        `missing_rep: skip` so are missing clips/videos (they are skipped and counted).
        """
        from sldata.findings import Report
        from sldata.validate import validate

        report = validate(self.data.path, split=self.data.train_split, workers=1)
        handled = {"clip-missing", "video-missing"} if self.data.missing_rep == "skip" else set()
        keep = [f for f in report.findings
                if (f.rep is None or f.rep in self.data.reps) and f.code not in handled]
        return Report(report.layout, keep, report.stats)

    def _device(self) -> torch.device:
        if self.device is not None:
            return self.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def clips(self, split: str, *, evaluation: bool = False, limit: int | None = None) -> FeatureClips:
        d = self.data
        return FeatureClips(d.path, split, d.reps, context_clips=d.context_clips, missing_rep=d.missing_rep,
                            placeholder_text="skip" if evaluation else d.placeholder_text, limit=limit,
                            context_prelude=d.context_prelude)

    def _train_clips(self) -> FeatureClips:
        if self._train is None:
            self._train = self.clips(self.data.train_split)
        return self._train

    def _llm_path(self) -> Path:
        """The frozen LM's directory; builds the tiny-random one once per run directory."""
        if self._llm_dir is None:
            if self.mcfg.llm != llm_mod.TINY:
                self._llm_dir = Path(self.mcfg.llm)
            else:
                target = Path(self.cfg.trainer.out_dir) / TINY_DIR
                d = self.data
                texts = self._train_clips().texts() + [d.prompt, d.context_prefix, d.answer_prefix,
                                                       d.system_prompt, d.instruction, d.context_instruction]
                positions = d.max_length + self.mcfg.max_new_tokens + 8
                _on_rank0(lambda: llm_mod.build_tiny_llm(target, texts, self.mcfg.tiny, positions))
                self._llm_dir = target
            self._fingerprint = llm_mod.fingerprint(self._llm_dir)
        return self._llm_dir

    def _resolve_layout(self) -> str:
        """data.layout once the tokenizer is known: auto = chat when it has a chat template."""
        has_template = bool(getattr(self._tokenizer, "chat_template", None))
        layout = self.data.layout
        if layout == "auto":
            layout = "chat" if has_template else "compact"
        elif layout == "chat" and not has_template:
            raise UserError(f"data.layout: chat needs a tokenizer with a chat template; {self.mcfg.llm} has none "
                            "(use data.layout: compact)")
        return layout

    def builder(self, *, generate: bool = False) -> SequenceBuilder | ChatSequenceBuilder:
        d = self.data
        if self._layout == "chat":
            return ChatSequenceBuilder(self._tokenizer, list(d.reps), d.max_length, d.system_prompt, d.instruction,
                                       d.context_instruction, generate=generate,
                                       max_new_tokens=self.mcfg.max_new_tokens)
        return SequenceBuilder(self._tokenizer, list(d.reps), d.max_length, d.prompt, d.context_prefix,
                               d.answer_prefix, generate=generate, max_new_tokens=self.mcfg.max_new_tokens)

    def build_model(self) -> SignLlava:
        path = self._llm_path()
        dtype = llm_mod.resolve_dtype(self.mcfg.dtype, self._device())
        lm, self._tokenizer = llm_mod.load_local_llm(path, dtype, self.mcfg.attn_implementation)
        self._layout = self._resolve_layout()
        dims = self._train_clips().dims
        if not dims:
            raise UserError(f"{self.data.path}: split {self.data.train_split!r} has no usable clip "
                            f"({self._skipped_text(self._train_clips())})")
        gen = self.builder(generate=True)
        need = gen.fixed_length("") + len(self.data.reps)
        if need > self.data.max_length:
            raise UserError(f"data.max_length={self.data.max_length} cannot hold the prompt ({self._layout} layout) "
                            f"and one frame per rep: {need} tokens")
        from jinja2 import TemplateError

        try:
            gen.stop_token_ids()  # renders system, user and assistant turns: a template that cannot is refused here
        except (ValueError, TemplateError) as exc:
            raise UserError(f"model.llm: {self.mcfg.llm}: chat layout: {exc} (data.system_prompt: '' drops the "
                            "system turn; data.layout: compact avoids the template)") from None
        smoothing = getattr(self.cfg.optim, "label_smoothing", 0.0)
        return SignLlava(llm_mod.freeze(lm), dims, self.mcfg.projector, self.mcfg.gradient_checkpointing,
                         label_smoothing=smoothing)

    def trainable_parameters(self, model: torch.nn.Module) -> list[torch.nn.Parameter]:
        return [p for n, p in model.named_parameters() if not n.startswith("lm.") and p.requires_grad]

    def _filter_overlong(self, ds: FeatureClips) -> FeatureClips:
        builder = self.builder()
        n = ds.drop(lambda ref: builder.overlong(ref.target), SKIP_OVERLONG)
        if n and self.data.overlong_target == "error":
            raise UserError(f"{n} clip(s) have a target that alone exceeds data.max_length={self.data.max_length} "
                            f"(e.g. {', '.join(ds.examples[SKIP_OVERLONG][:3])}); raise max_length or set "
                            "data.overlong_target: skip")
        return ds

    def train_dataset(self) -> FeatureClips:
        if self._tokenizer is None:
            raise RuntimeError("build_model() must run before train_dataset()")
        ds = self._filter_overlong(self._train_clips())
        if len(ds):
            _on_rank0(lambda: self.write_sample(ds[0], Path(self.cfg.trainer.out_dir) / SAMPLE_FILE))
        return ds

    def write_sample(self, sample: dict[str, Any], path: Path) -> str:
        """`path` (OUT_DIR/sample.txt): `sample` as the LM sees it (sltrain.models.sign_llava.render_sample)."""
        text = render_sample(self._tokenizer, self.builder()([sample]), self.data.reps, layout=self._layout or "")
        write_bytes_atomic(path, text.encode("utf-8"))
        return text

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return self.builder()

    @staticmethod
    def _skipped_text(ds: FeatureClips) -> str:
        if not ds.skipped:
            return "none skipped"
        return ", ".join(f"{v} skipped as {k} (e.g. {ds.examples[k][0]})" for k, v in sorted(ds.skipped.items()))

    def data_summary(self) -> dict[str, Any]:
        ds = self._train_clips()
        return {"clips": len(ds), "reps": ",".join(f"{r}:{ds.dims.get(r)}" for r in self.data.reps),
                **ds.skip_counts(), "llm": self.mcfg.llm, "layout": self._layout}

    # --- training ------------------------------------------------------------------------
    def training_step(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        loss, metrics = model(batch)
        return loss, {**metrics, **{k: float(v) for k, v in batch["stats"].items()}}

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """Teacher-forced loss and next-token accuracy on the eval split's targets."""
        if self._eval is None:
            self._eval = self._filter_overlong_quiet(self.clips(self.data.eval_split, evaluation=True,
                                                                limit=self.data.eval_max_clips))
        ds = self._eval
        if not len(ds):
            return {}
        total, acc, n = 0.0, 0.0, 0
        for batch in self.eval_loader(ds, self.builder()):
            tokens = batch["stats"]["tokens/target"]
            loss, m = model(move_batch(batch, self._device()))
            total += float(loss) * tokens
            acc += float(m["target_acc"]) * tokens
            n += tokens
        return {"loss": total / n, "target_acc": acc / n}

    def _filter_overlong_quiet(self, ds: FeatureClips) -> FeatureClips:
        builder = self.builder()
        ds.drop(lambda ref: builder.overlong(ref.target), SKIP_OVERLONG)
        return ds

    # --- checkpoints ---------------------------------------------------------------------
    def checkpoint_extra(self) -> dict[str, Any]:
        return {"llm": self.mcfg.llm, "llm_fingerprint": self._fingerprint, "reps": list(self.data.reps),
                "dims": dict(self._train_clips().dims), "projector": self.mcfg.projector, "layout": self._layout}

    def model_state_for_checkpoint(self, model: torch.nn.Module) -> dict[str, Any]:
        return model.trainable_state_dict()

    def checkpoint_saved(self, path: Path, model: torch.nn.Module) -> None:
        """Write `X.upstream.pt` beside checkpoint `X.pt`, and drop those of pruned checkpoints."""
        export = upstream_state(model.trainable_state_dict(), list(self.data.reps))
        dims = dict(self._train_clips().dims)
        # plain data upstream ignores: its SignModelArguments.projectors block for these weights
        export["sldata"] = {"layout": self._layout, "marker_rows": ["<video_start>", "<video_end>"],
                            "projectors": {r: {"dim": dims[r], "projector_type": self.mcfg.projector}
                                           for r in self.data.reps}}
        target = path.with_name(path.stem + UPSTREAM_SUFFIX)
        write_torch(target, export)
        for stale in path.parent.glob(f"step_*{UPSTREAM_SUFFIX}"):
            if not stale.with_name(stale.name[:-len(UPSTREAM_SUFFIX)] + ".pt").exists() and stale != target:
                stale.unlink(missing_ok=True)
    def load_model_state(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        model.load_trainable_state_dict(state)

    # --- sltrain evaluate ------------------------------------------------------------------
    def default_eval_split(self) -> str:
        """`test` where the dataset has one, else the periodic eval split (mock data: dev)."""
        from sldata.features import detect_layout

        layout = detect_layout(self.data.path)
        return "test" if layout is not None and "test" in layout.splits else self.data.eval_split

    def eval_model(self, state: dict[str, Any], path: Path) -> SignLlava:
        """The frozen LM with fresh projectors, once the checkpoint was trained on this LM and layout."""
        extra = state.get("extra") or {}
        model = self.build_model()
        if extra.get("llm_fingerprint") and extra["llm_fingerprint"] != self._fingerprint:
            raise UserError(f"{path}: trained on another frozen LM ({extra.get('llm')}, fingerprint "
                            f"{extra['llm_fingerprint']}) than model.llm={self.mcfg.llm} ({self._fingerprint})")
        if extra.get("layout") and extra["layout"] != self._layout:
            raise UserError(f"{path}: trained on the {extra['layout']} layout, this config resolves "
                            f"data.layout to {self._layout} (set data.layout: {extra['layout']})")
        return model

    def eval_dataset(self, split: str) -> FeatureClips:
        self._stop = self.builder(generate=True).stop_token_ids()
        ds = self._eval_clips = self.clips(split, evaluation=True)
        if not len(ds):
            raise UserError(f"split {split!r} has no clip to evaluate ({self._skipped_text(ds)})")
        self._shortened = 0
        return ds

    def eval_collate_fn(self) -> Callable[[list[Any]], Any]:
        return self.builder(generate=True)

    def predict(self, model: torch.nn.Module, batch: Any) -> list[dict[str, Any]]:
        """Greedy translations of the batch's clips."""
        self._shortened += batch["stats"]["shorten/context_samples"] + batch["stats"]["shorten/visual_samples"]
        preds = model.generate(move_batch(batch, self._device()), self._tokenizer, self.mcfg.max_new_tokens,
                               self._stop)
        return [{"video": video, "clip": clip, "prediction": pred, "reference": ref}
                for (video, clip), ref, pred in zip(batch["keys"], batch["targets"], preds)]

    def score(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Corpus BLEU and chrF (sacrebleu) with their signatures, and what was shortened or skipped."""
        import sacrebleu

        hyps, refs = [r["prediction"] for r in records], [r["reference"] for r in records]
        bleu_metric, chrf_metric = sacrebleu.BLEU(), sacrebleu.CHRF()
        bleu = bleu_metric.corpus_score(hyps, [refs])
        chrf = chrf_metric.corpus_score(hyps, [refs])
        return {"clips": len(records), "bleu": _finite(bleu.score), "chrf": _finite(chrf.score),
                "bleu_signature": str(bleu_metric.get_signature()),
                "chrf_signature": str(chrf_metric.get_signature()),
                "shortened_samples": int(self._shortened), **self._eval_clips.skip_counts()}


def _finite(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0


def _on_rank0(fn: Callable[[], Any]) -> None:
    """Run `fn` on rank 0 only (others wait): shared files are written once under torchrun."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if dist.get_rank() == 0:
            fn()
        dist.barrier()
    else:
        fn()
