"""Sign_LLaVA: a frozen causal LM reading projected clip features, and sequence assembly.

Two layouts (`data.layout`), both one visual token per feature frame of each rep
(projected to the LM's hidden size):

* ``chat`` (upstream JSALT 2024 Sign_LLaVA's, the default when the LM's tokenizer has
  a chat template): the template renders a system turn, then a user turn holding
  every rep in its own ``<video_start> rep <video_end>`` pair, a newline and the
  instruction (with the context sentences inside it), then the assistant turn::

      <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\nSYSTEM<|eot_id|>
      <|start_header_id|>user<|end_header_id|>\\n\\n<video_start>rep_1<video_end>...
      <video_start>rep_n<video_end>\\nINSTRUCTION<|eot_id|>
      <|start_header_id|>assistant<|end_header_id|>\\n\\n⟦target<|eot_id|>⟧

  The template is applied by the tokenizer (never hand-written headers) and the
  result tokenized without adding special tokens, so there is one <|begin_of_text|>.
  Every literal ``<video_start>`` / ``<video_end>`` of the rendered text (the system
  prompt names them too, as upstream's tokenizer turns those words into its marker
  tokens) becomes a marker position.
* ``compact`` (this project's earlier layout)::

      <bos> prompt [context_prefix ctx_1 ... ctx_k] <video_start> rep_1 ... rep_n
      <video_end> answer_prefix ⟦target <eos>⟧

Only the ⟦supervised⟧ tokens have labels (everything else is -100).
`<video_start>`/`<video_end>` are two trainable vectors kept beside the frozen
embedding matrix (never a resized vocabulary), so the LM stays bit-identical.

Length control (`plan_budget`), when a sample exceeds `max_length` tokens (every
text token counts, the template's own included):

1. drop context sentences, oldest first, until it fits or none is left;
2. then subsample every rep's frames uniformly (bin centres), each rep keeping a
   share of the visual budget proportional to its length (largest remainders
   round up), at least one frame;
3. the target is never cut: if the text without context, the target and one frame
   per rep alone exceed the budget, the sample is "overlong" and the data set drops
   it (counted) or refuses it, per `data.overlong_target`.

Every shortening is counted in the batch's `stats`, which the recipe logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .projector import Projectors

IGNORE = -100
VIDEO_START, VIDEO_END = "<video_start>", "<video_end>"
_REP_SLOT = "<|sldata-rep:{}|>"  # where a rep's frames go in the rendered chat text
_SPLIT = re.compile(r"(<video_start>|<video_end>|<\|sldata-rep:[A-Za-z0-9_-]+\|>)")
_SLOT = re.compile(r"^<\|sldata-rep:([A-Za-z0-9_-]+)\|>$")


@dataclass
class Plan:
    """How one sample fits the budget: kept context sentences and frames per rep."""

    context_keep: int  # how many of the newest context sentences stay
    frames: list[np.ndarray]  # per rep: frame indices kept (sorted)
    length: int
    context_dropped: int = 0
    visual_dropped: int = 0
    overlong: bool = False


def uniform_frames(t: int, n: int) -> np.ndarray:
    """`n` of `t` frames at the centres of `n` equal bins (all frames when n >= t)."""
    if n >= t:
        return np.arange(t)
    return np.floor((np.arange(n) + 0.5) * t / n).astype(np.int64)


def plan_budget(text_len: Callable[[int], int], n_context: int, frames: Sequence[int], max_length: int) -> Plan:
    """Apply the length-control rule (module docstring).

    `text_len(k)` is the number of non-visual tokens of the sample when the `k` newest
    context sentences are kept (target and markers included); `frames` the visual
    token count of each rep.
    """
    n_reps = len(frames)
    if text_len(0) + n_reps > max_length:
        return Plan(0, [np.arange(0) for _ in frames], text_len(0) + n_reps, overlong=True)
    keep = n_context
    vis = sum(frames)
    while keep and text_len(keep) + vis > max_length:
        keep -= 1
    budget = max_length - text_len(keep)
    idx = [np.arange(t) for t in frames]
    if vis > budget:
        counts = [max(1, (t * budget) // vis) for t in frames]
        # largest remainders get the tokens the floors left unused ...
        order = sorted(range(n_reps), key=lambda j: -((frames[j] * budget) % vis))
        for j in order:
            if sum(counts) >= budget:
                break
            if counts[j] < frames[j]:
                counts[j] += 1
        while sum(counts) > budget:  # ... and the at-least-one floor can overshoot by a few
            j = int(np.argmax(counts))
            counts[j] -= 1
        idx = [uniform_frames(t, n) for t, n in zip(frames, counts)]
    kept_vis = sum(len(i) for i in idx)
    return Plan(keep, idx, text_len(keep) + kept_vis, context_dropped=n_context - keep,
                visual_dropped=vis - kept_vis)


def plan_sample(fixed: int, context_lens: Sequence[int], context_prefix: int, frames: Sequence[int],
                max_length: int) -> Plan:
    """`plan_budget` for the compact layout, from token counts.

    `fixed` counts every token that is never shortened (bos, prompt, the two video
    markers, answer prefix, target, eos); `context_lens` are the sentences' lengths,
    oldest first, and `context_prefix` the length of the text put before them.
    """
    def text_len(k: int) -> int:
        return fixed + ((context_prefix + sum(context_lens[len(context_lens) - k:])) if k else 0)

    return plan_budget(text_len, len(context_lens), frames, max_length)


# A sample as pieces: ("text", ids, supervised) | ("marker", 0 start / 1 end) | ("rep", name)
Piece = tuple


@dataclass
class _Builder:
    """Shared part of both layouts: turns samples into padded LM batches (a collate_fn).

    Picklable (the tokenizer is a fast tokenizer), so it runs inside DataLoader workers.
    """

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    # --- what a layout provides --------------------------------------------------------
    def pieces(self, sample: dict[str, Any], keep: int) -> list[Piece]:
        """The sample with its `keep` newest context sentences (no target in generate mode)."""
        raise NotImplementedError

    def stop_token_ids(self) -> list[int]:
        raise NotImplementedError

    # --- shared --------------------------------------------------------------------------
    @staticmethod
    def _text_len(pieces: list[Piece]) -> int:
        return sum(len(p[1]) if p[0] == "text" else 1 for p in pieces if p[0] != "rep")

    def fixed_length(self, target: str) -> int:
        """Tokens of a training sequence that length control never removes."""
        return self._text_len(self.pieces({"target": target, "context": []}, 0))

    def overlong(self, target: str) -> bool:
        """True when the target alone (with prompt, markers, one frame per rep) exceeds the budget."""
        return self.fixed_length(target) + len(self.reps) > self.max_length

    def plan(self, sample: dict[str, Any]) -> tuple[Plan, list[Piece]]:
        ctx = list(sample.get("context", []))
        frames = [int(sample["features"][r].shape[0]) for r in self.reps]
        memo: dict[int, list[Piece]] = {}

        def pieces(k: int) -> list[Piece]:
            if k not in memo:
                memo[k] = self.pieces(sample, k)
            return memo[k]

        if self.generate:
            room = self.max_length - self._text_len(pieces(0)) - len(self.reps)
            extra = max(0, min(self.max_new_tokens, room))
        else:
            extra = 0
        plan = plan_budget(lambda k: self._text_len(pieces(k)) + extra, len(ctx), frames, self.max_length)
        return plan, pieces(plan.context_keep)

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rows, labels_rows, marks, rep_pos = [], [], [], {r: [] for r in self.reps}
        stats = {"shorten/context_samples": 0, "shorten/context_sentences": 0,
                 "shorten/visual_samples": 0, "shorten/visual_tokens": 0,
                 "tokens/target": 0, "tokens/visual": 0, "tokens/total": 0}
        feats_kept: dict[str, list[torch.Tensor]] = {r: [] for r in self.reps}
        for s in samples:
            plan, pieces = self.plan(s)
            if plan.overlong:
                # The dataset filters these beforehand; reaching here is a bug, never a silent cut.
                raise ValueError(f"sample {s.get('video')}/{s.get('clip')} does not fit max_length="
                                 f"{self.max_length} even without context and with one frame per rep")
            stats["shorten/context_samples"] += int(plan.context_dropped > 0)
            stats["shorten/context_sentences"] += plan.context_dropped
            stats["shorten/visual_samples"] += int(plan.visual_dropped > 0)
            stats["shorten/visual_tokens"] += plan.visual_dropped
            keep = dict(zip(self.reps, plan.frames))
            seq: list[int] = []
            lab: list[int] = []
            mk: list[tuple[int, int]] = []
            for p in pieces:
                if p[0] == "text":
                    seq += p[1]
                    lab += p[1] if p[2] else [IGNORE] * len(p[1])
                    stats["tokens/target"] += len(p[1]) if p[2] else 0
                elif p[0] == "marker":
                    mk.append((len(seq), p[1]))
                    seq.append(pad)
                    lab.append(IGNORE)
                else:
                    k = keep[p[1]]
                    rep_pos[p[1]].append(torch.arange(len(seq), len(seq) + len(k)))
                    feats_kept[p[1]].append(s["features"][p[1]][torch.from_numpy(k)])
                    seq += [pad] * len(k)
                    lab += [IGNORE] * len(k)
            rows.append(seq)
            labels_rows.append(lab)
            marks.append(mk)
            stats["tokens/visual"] += sum(len(k) for k in plan.frames)
            stats["tokens/total"] += len(seq)
        width = max(len(r) for r in rows)
        b = len(rows)
        input_ids = torch.full((b, width), pad, dtype=torch.long)
        attention = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, width), IGNORE, dtype=torch.long)
        n_marks = max(len(m) for m in marks)
        markers = torch.full((b, n_marks), -1, dtype=torch.long)
        marker_kind = torch.zeros((b, n_marks), dtype=torch.long)
        offsets = []
        for i, (seq, lab) in enumerate(zip(rows, labels_rows)):
            off = width - len(seq) if self.generate else 0  # left padding for generation
            offsets.append(off)
            input_ids[i, off:off + len(seq)] = torch.tensor(seq)
            attention[i, off:off + len(seq)] = 1
            labels[i, off:off + len(lab)] = torch.tensor(lab)
            for j, (pos, kind) in enumerate(marks[i]):
                markers[i, j] = pos + off
                marker_kind[i, j] = kind
        batch_feats, batch_pos = {}, {}
        for r in self.reps:
            tmax = max(len(p) for p in rep_pos[r])
            d = feats_kept[r][0].shape[1]
            f = torch.zeros((b, tmax, d), dtype=torch.float32)
            p = torch.full((b, tmax), -1, dtype=torch.long)
            for i, (fi, pi) in enumerate(zip(feats_kept[r], rep_pos[r])):
                f[i, :len(pi)] = fi
                p[i, :len(pi)] = pi + offsets[i]
            batch_feats[r], batch_pos[r] = f, p
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels,
                "markers": markers, "marker_kind": marker_kind,
                "features": batch_feats, "positions": batch_pos, "stats": stats,
                "keys": [(s.get("video"), s.get("clip")) for s in samples],
                "targets": [s.get("target", "") for s in samples]}


@dataclass
class SequenceBuilder(_Builder):
    """The compact layout (module docstring): no chat template, one marker pair around all reps."""

    tokenizer: Any
    reps: list[str]
    max_length: int
    prompt: str
    context_prefix: str = "Previous sentences:"
    answer_prefix: str = "Translation:"
    generate: bool = False  # True: no target, left padding, room kept for max_new_tokens
    max_new_tokens: int = 64
    _cache: dict = field(default_factory=dict, repr=False)

    layout = "compact"

    def _static(self) -> tuple[list[int], list[int], list[int]]:
        if not self._cache:
            self._cache["prompt"] = self.ids(self.prompt)
            self._cache["ctx"] = self.ids("\n" + self.context_prefix)
            self._cache["answer"] = self.ids("\n" + self.answer_prefix)
        return self._cache["prompt"], self._cache["ctx"], self._cache["answer"]

    def target_ids(self, target: str) -> list[int]:
        return self.ids(" " + target.strip()) if target.strip() else []

    def stop_token_ids(self) -> list[int]:
        return [self.tokenizer.eos_token_id]

    def pieces(self, sample: dict[str, Any], keep: int) -> list[Piece]:
        tok = self.tokenizer
        prompt, ctx_prefix, answer = self._static()
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        ctx = list(sample.get("context", []))
        kept = ctx[len(ctx) - keep:] if keep else []
        head = bos + prompt
        if kept:
            head = head + ctx_prefix + [t for c in kept for t in self.ids(" " + c.strip())]
        out: list[Piece] = [("text", head, False), ("marker", 0)]
        out += [("rep", r) for r in self.reps]
        out += [("marker", 1), ("text", answer, False)]
        if not self.generate:
            out.append(("text", self.target_ids(sample["target"]) + [tok.eos_token_id], True))
        return out


@dataclass
class ChatSequenceBuilder(_Builder):
    """Upstream Sign_LLaVA's layout through the tokenizer's chat template (module docstring)."""

    tokenizer: Any
    reps: list[str]
    max_length: int
    system_prompt: str
    instruction: str
    context_instruction: str  # holds "{context}": the kept sentences joined by a space
    generate: bool = False
    max_new_tokens: int = 64
    _cache: dict = field(default_factory=dict, repr=False)

    layout = "chat"

    def messages(self, context: Sequence[str]) -> list[dict[str, str]]:
        video = "".join(f"{VIDEO_START}{_REP_SLOT.format(r)}{VIDEO_END}" for r in self.reps)
        ctx = " ".join(c.strip() for c in context)
        instruction = self.context_instruction.replace("{context}", ctx) if context else self.instruction
        msgs = [{"role": "user", "content": video + "\n" + instruction}]
        if self.system_prompt:
            msgs.insert(0, {"role": "system", "content": self.system_prompt})
        return msgs

    def _render(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=generation_prompt)

    def _prompt(self, context: Sequence[str]) -> list[Piece]:
        out: list[Piece] = []
        for part in _SPLIT.split(self._render(self.messages(context), True)):
            if part == VIDEO_START or part == VIDEO_END:
                out.append(("marker", int(part == VIDEO_END)))
            elif (m := _SLOT.match(part)) is not None:
                out.append(("rep", m.group(1)))
            elif part:
                out.append(("text", self.ids(part), False))
        if [p[1] for p in out if p[0] == "rep"] != list(self.reps):
            raise ValueError("the chat template did not keep the user turn's video (each rep exactly once)")
        return out

    def answer_ids(self, target: str) -> list[int]:
        """The assistant turn after its header, as the template writes it: target + end of turn."""
        msgs = self.messages(())
        prompt = self._cache.get("prompt_text")
        if prompt is None:
            prompt = self._cache["prompt_text"] = self._render(msgs, True)
        full = self._render(msgs + [{"role": "assistant", "content": target}], False)
        if not full.startswith(prompt):
            raise ValueError("the chat template renders the assistant turn differently from its generation "
                             "prompt; use data.layout: compact with this LM")
        return self.ids(full[len(prompt):])

    def stop_token_ids(self) -> list[int]:
        """eos and the template's end-of-turn token (the first token after an empty answer)."""
        end = self.answer_ids("")
        return sorted({self.tokenizer.eos_token_id, *end[:1]} - {None})

    def pieces(self, sample: dict[str, Any], keep: int) -> list[Piece]:
        ctx = list(sample.get("context", []))
        kept = tuple(ctx[len(ctx) - keep:]) if keep else ()
        if not kept:
            if "none" not in self._cache:
                self._cache["none"] = self._prompt(())
            out = list(self._cache["none"])
        else:
            out = self._prompt(kept)
        if not self.generate:
            out.append(("text", self.answer_ids(sample["target"]), True))
        return out


def render_sample(tokenizer: Any, batch: dict[str, Any], reps: Sequence[str], row: int = 0,
                  layout: str = "") -> str:
    """Row `row` of a training batch as the LM sees it (the OUT_DIR/sample.txt format).

    Text tokens decoded verbatim (special tokens included); a rep's visual span as
    ``<REP×N>``; markers as ``<video_start>`` / ``<video_end>``; the supervised span
    (labels != -100) between ⟦ and ⟧. The first line names the video and clip.
    """
    ids = batch["input_ids"][row].tolist()
    labels = batch["labels"][row].tolist()
    mask = batch["attention_mask"][row].tolist()
    what: dict[int, str] = {}
    for r in reps:
        for pos in batch["positions"][r][row].tolist():
            if pos >= 0:
                what[pos] = r
    for pos, kind in zip(batch["markers"][row].tolist(), batch["marker_kind"][row].tolist()):
        if pos >= 0:
            what[pos] = VIDEO_END if kind else VIDEO_START
    out: list[str] = []
    run: list[int] = []
    supervised = False

    def flush() -> None:
        if run:
            out.append(tokenizer.decode(run, skip_special_tokens=False, clean_up_tokenization_spaces=False))
            run.clear()

    positions = [i for i, m in enumerate(mask) if m]
    i = 0
    while i < len(positions):
        pos = positions[i]
        sup = labels[pos] != IGNORE
        if sup != supervised:
            flush()
            out.append("⟦" if sup else "⟧")
            supervised = sup
        kind = what.get(pos)
        if kind is None:
            run.append(ids[pos])
            i += 1
        elif kind in (VIDEO_START, VIDEO_END):
            flush()
            out.append(kind)
            i += 1
        else:
            flush()
            n = 0
            while i < len(positions) and what.get(positions[i]) == kind:
                n += 1
                i += 1
            out.append(f"<{kind}×{n}>")
    flush()
    if supervised:
        out.append("⟧")
    video, clip = batch["keys"][row]
    n_vis = sum(1 for p in positions if what.get(p) not in (None, VIDEO_START, VIDEO_END))
    n_sup = sum(1 for p in positions if labels[p] != IGNORE)
    header = (f"# video {video} clip {clip}: {len(positions)} positions ({n_vis} visual, {n_sup} supervised)"
              + (f", layout {layout}" if layout else ""))
    legend = "# <REP×N>: N visual tokens of REP; ⟦...⟧: supervised tokens (labels != -100)"
    return header + "\n" + legend + "\n" + "".join(out) + "\n"


class SignLlava(nn.Module):
    """Frozen LM + trainable per-rep projectors + trainable <video_start>/<video_end>."""

    def __init__(self, lm: nn.Module, rep_dims: dict[str, int], projector: str = "mlp2x_gelu",
                 gradient_checkpointing: bool = False, label_smoothing: float = 0.0):
        super().__init__()
        self.lm = lm
        self.label_smoothing = label_smoothing  # applied in training mode only
        self.lm.requires_grad_(False)
        emb = lm.get_input_embeddings().weight
        hidden = emb.shape[1]
        self.projectors = Projectors(projector, rep_dims, hidden)
        with torch.no_grad():  # start near the LM's own embedding statistics
            w = emb.detach().float()
            init = w.mean(0, keepdim=True).repeat(2, 1) + torch.randn(2, hidden) * w.std() * 0.1
        self.video_markers = nn.Parameter(init)  # row 0: <video_start>, row 1: <video_end>
        self.gradient_checkpointing = gradient_checkpointing
        if gradient_checkpointing:
            kwargs = {"use_reentrant": False}  # grads flow to inputs_embeds, not to frozen weights
            if hasattr(lm, "activation_checkpointing_enable"):  # transformers >= 5
                lm.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.train()

    def train(self, mode: bool = True) -> "SignLlava":
        """The LM always stays in eval mode (no dropout); only its layers' checkpointing flag follows."""
        super().train(mode)
        self.lm.eval()
        if self.gradient_checkpointing and mode:
            from transformers.modeling_layers import GradientCheckpointingLayer

            for m in self.lm.modules():
                if isinstance(m, GradientCheckpointingLayer):
                    m.training = True  # the flag HF checks; the layer's submodules stay in eval
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Projectors and the two video markers: everything a checkpoint needs."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("lm.")}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = {k for k in self.state_dict() if not k.startswith("lm.")}
        missing, unexpected = own - set(state), set(state) - own
        if missing or unexpected:
            raise KeyError(f"checkpoint does not match the model: missing {sorted(missing)}, "
                           f"unexpected {sorted(unexpected)}")
        self.load_state_dict(state, strict=False)

    def embed(self, batch: dict[str, Any]) -> torch.Tensor:
        """Input embeddings with projected features and video markers in place."""
        ids = batch["input_ids"]
        emb = self.lm.get_input_embeddings()(ids)
        b = torch.arange(ids.shape[0], device=ids.device)
        for rep, proj in self.projectors.items():
            pos = batch["positions"][rep]
            feats = batch["features"][rep]
            out = proj(feats.to(next(proj.parameters()).dtype))
            valid = pos >= 0
            rows = b[:, None].expand_as(pos)[valid]
            emb = emb.index_put((rows, pos[valid]), out[valid].to(emb.dtype))
        m, kind = batch["markers"], batch["marker_kind"]
        valid = m >= 0
        rows = b[:, None].expand_as(m)[valid]
        return emb.index_put((rows, m[valid]), self.video_markers.to(emb.dtype)[kind[valid]])

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(mean loss over target tokens, {'target_acc': next-token accuracy on the target}).

        The LM head runs only at target positions: a 128k-vocabulary head over every
        visual and prompt token would cost memory and FLOPs for logits nobody reads.
        """
        emb = self.embed(batch)
        hidden = self.lm.base_model(inputs_embeds=emb, attention_mask=batch["attention_mask"],
                                    use_cache=False).last_hidden_state
        labels = batch["labels"][:, 1:]
        mask = labels != IGNORE
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][mask]).float()
        target = labels[mask]
        smoothing = self.label_smoothing if self.training else 0.0
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=smoothing)
        with torch.no_grad():
            acc = (logits.argmax(-1) == target).float().mean()
        return loss, {"target_acc": acc}

    @torch.no_grad()
    def generate(self, batch: dict[str, Any], tokenizer: Any, max_new_tokens: int,
                 stop_token_ids: Sequence[int] | None = None) -> list[str]:
        """Greedy decoding from left-padded prompts; returns the decoded texts.

        `stop_token_ids`: eos by default; the chat layout adds the template's end of turn.
        """
        emb = self.embed(batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        stop = list(stop_token_ids) if stop_token_ids else tokenizer.eos_token_id
        out = self.lm.generate(inputs_embeds=emb, attention_mask=batch["attention_mask"],
                               max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                               eos_token_id=stop, pad_token_id=pad)
        return [t.strip() for t in tokenizer.batch_decode(out, skip_special_tokens=True)]


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors (also inside `features`/`positions`) to `device`; the rest unchanged."""
    def mv(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x.to(device, non_blocking=True)
        if isinstance(x, dict) and x and all(isinstance(v, torch.Tensor) for v in x.values()):
            return {k: v.to(device, non_blocking=True) for k, v in x.items()}
        return x
    return {k: mv(v) for k, v in batch.items()}
