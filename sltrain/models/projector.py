"""Per-rep projectors: clip features (T, D_rep) -> LM input embeddings (T, H).

`linear` is LLaVA-1's projector, `mlp2x_gelu` LLaVA-1.5's (and Sign_LLaVA's):
Linear -> GELU -> Linear. One projector per rep, one token per feature frame.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn


def build_projector(kind: Literal["linear", "mlp2x_gelu"], in_dim: int, hidden: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_dim, hidden)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
    raise ValueError(f"unknown projector {kind!r} (allowed: linear, mlp2x_gelu)")


class Projectors(nn.ModuleDict):
    """{rep: projector}; the only vision-side weights that train."""

    def __init__(self, kind: Literal["linear", "mlp2x_gelu"], dims: dict[str, int], hidden: int):
        super().__init__({rep: build_projector(kind, d, hidden) for rep, d in dims.items()})
        self.dims = dict(dims)


#: The rows of the exported `model.embed_tokens.weight`, in the order upstream adds the tokens.
UPSTREAM_MARKER_TOKENS = ("<video_start>", "<video_end>")


def upstream_state(trainable: dict[str, Any], reps: list[str]) -> dict[str, Any]:
    """Projectors and markers under the names upstream Sign_LLaVA's next stage loads.

    Upstream (JSALT 2024 Sign_LLaVA, v2.5.1, `llava/model/llava_arch.py`) reads the file
    named by `SignModelArguments.projectors.pretrained_projector_ckpt` with `torch.load`
    and takes `["module"]` (a DeepSpeed `mp_rank_00_model_states.pt`):
    `SignLlavaProjector.initialize_projectors` loads each `{rep}_projector` from the keys
    containing `{rep}_projector.` (the rest of the key is the module's own parameter
    name: `0.weight`, `2.bias`, ... for `mlp2x_gelu`); `initialize_vision_tokenizer`
    copies `model.embed_tokens.weight` of shape (2, hidden) into the rows of the two
    tokens it adds, `<video_start>` then `<video_end>`.
    """
    module: dict[str, Any] = {}
    for rep in reps:
        prefix = f"projectors.{rep}."
        for k, v in trainable.items():
            if k.startswith(prefix):
                module[f"model.{rep}_projector.{k[len(prefix):]}"] = v.detach().cpu().contiguous()
    module["model.embed_tokens.weight"] = trainable["video_markers"].detach().cpu().contiguous()
    return {"module": module}
