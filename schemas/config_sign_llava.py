"""`recipe: sign_llava` config sections: `data` (a v1/v2 feature dataset) and `model`.

Every default lives here; unknown keys are rejected so a typo in a YAML file
fails loudly instead of silently training with a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from schemas.config import OptimConfig, Strict, TrainConfig

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"

#: compact layout only
DEFAULT_PROMPT = "Translate the following American Sign Language video into English."

# Upstream JSALT 2024 Sign_LLaVA (v2.5.1 @0a32174), verbatim: `conv_llava_sign_llama_3.system` in
# llava/conversation.py (its missing space after "tasks." included) and PROMPT_OPTIONS in
# llava/constants.py (without their trailing space, which the Llama-3 template trims anyway).
UPSTREAM_SYSTEM_PROMPT = (
    "You are a specialized assistant for American Sign Language (ASL). "
    "Your capabilities include understanding and interpreting ASL content from videos provided by users. "
    "You can translate ASL into English accurately and respond to specific inquiries about the presence of "
    "particular signs within the video, demonstrating comprehension. "
    "Your role is to assist users effectively by leveraging sign language for communication and tasks."
    "The video is represented by a single or several streams of visual features delimited by "
    "<video_start> and <video_end>.")
UPSTREAM_INSTRUCTION = "Translate the given American Sign Language video into English."
UPSTREAM_CONTEXT_INSTRUCTION = ("Here are some preceding sentences as context: '{context}'. "
                                "Translate the next sentence given by the American Sign Language video into English.")


class SignLlavaData(Strict):
    """Which clips become samples, and how a sample is assembled and bounded."""

    path: str = Field(description="feature dataset directory, v1 (`mock_data/`) or v2 (`mock_data_multi/`)")
    train_split: str = Field("train", pattern=NAME_PATTERN)
    eval_split: str = Field("dev", pattern=NAME_PATTERN, description="split for periodic evaluation")
    reps: list[str] = Field(default_factory=lambda: ["dino", "mae", "pose", "sign2vec"], min_length=1)
    context_clips: int = Field(0, ge=0, description="previous clips' translations given as context")
    context_prelude: int = Field(
        0, ge=0, description="also the first N translations of the video as context (upstream's "
        "prelude_window_size); a clip with fewer than context_clips + N predecessors gets all of them")
    layout: Literal["auto", "chat", "compact"] = Field(
        "auto", description="chat: upstream Sign_LLaVA's sequence through the LM's chat template; compact: "
        "prompt/context/video/answer_prefix without template; auto: chat when the tokenizer has a template")
    system_prompt: str = Field(UPSTREAM_SYSTEM_PROMPT, description="chat layout: the system turn ('' for none)")
    instruction: str = Field(UPSTREAM_INSTRUCTION, description="chat layout: the user turn's text after the "
                             "video, when there is no context")
    context_instruction: str = Field(UPSTREAM_CONTEXT_INSTRUCTION, description="chat layout: the same with "
                                     "context; {context} is the kept sentences joined by a space")
    missing_rep: Literal["skip", "error"] = Field(
        "skip", description="a clip absent from a selected rep: skip it (counted) or refuse the dataset")
    placeholder_text: Literal["skip", "keep", "error"] = Field(
        "skip", description="empty / '<none>' / NaN target: skip (counted), train on it verbatim, or refuse")
    overlong_target: Literal["skip", "error"] = Field(
        "error", description="a target that alone does not fit max_length: skip (counted) or refuse")
    max_length: int = Field(1024, ge=16, description="token budget of one full sequence")
    prompt: str = Field(DEFAULT_PROMPT, description="compact layout: text before the video")
    context_prefix: str = Field("Previous sentences:", description="compact layout: text before the context")
    answer_prefix: str = Field("Translation:", description="compact layout: text between the video and the target")
    eval_max_clips: int | None = Field(None, ge=1, description="evaluate on the first N clips only")

    @field_validator("reps")
    @classmethod
    def _reps(cls, v: list[str]) -> list[str]:
        import re

        for r in v:
            if not re.match(NAME_PATTERN, r):
                raise ValueError(f"rep name {r!r} must match [A-Za-z0-9_-]+")
        if len(set(v)) != len(v):
            raise ValueError(f"reps listed twice: {v}")
        return v

    @field_validator("context_instruction")
    @classmethod
    def _context_slot(cls, v: str) -> str:
        if v.count("{context}") != 1:
            raise ValueError("context_instruction must hold '{context}' exactly once")
        return v


class TinyRandomLM(Strict):
    """Sizes of the `llm: tiny-random` Llama model (tests, demos; no downloads)."""

    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(128, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: int = Field(2, ge=1)
    vocab_size: int = Field(512, ge=300, description="BPE vocabulary trained on the dataset's texts")
    seed: int = 0

    @model_validator(mode="after")
    def _heads(self) -> "TinyRandomLM":
        if self.hidden_size % self.num_heads:
            raise ValueError("hidden_size must be a multiple of num_heads")
        if self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        return self


class SignLlavaModel(Strict):
    """The frozen LM, the trainable projectors, and generation settings."""

    llm: str = Field("tiny-random", description="local Hugging Face model directory, or 'tiny-random'")
    projector: Literal["linear", "mlp2x_gelu"] = "mlp2x_gelu"
    tiny: TinyRandomLM = Field(default_factory=TinyRandomLM)
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="LM weights dtype: auto = bfloat16 on CUDA, float32 on CPU")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    gradient_checkpointing: bool = False
    max_new_tokens: int = Field(64, ge=1, description="generation budget of `sltrain evaluate`")


class SignLlavaOptim(OptimConfig):
    """The shared optimizer section plus the loss option only this recipe reads."""

    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the training loss on the "
                                   "supervised tokens (upstream pretraining: 0.1); eval loss is plain NLL")


class SignLlavaConfig(TrainConfig):
    """A whole `recipe: sign_llava` run: the shared optim/trainer plus this recipe's sections."""

    recipe: Literal["sign_llava"] = "sign_llava"
    data: SignLlavaData
    model: SignLlavaModel = Field(default_factory=SignLlavaModel)
    optim: SignLlavaOptim = Field(default_factory=SignLlavaOptim)


__all__ = ["SignLlavaConfig", "SignLlavaData", "SignLlavaModel", "SignLlavaOptim", "TinyRandomLM",
           "DEFAULT_PROMPT", "UPSTREAM_SYSTEM_PROMPT", "UPSTREAM_INSTRUCTION", "UPSTREAM_CONTEXT_INSTRUCTION"]
