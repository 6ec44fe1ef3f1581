"""The frozen causal LM and its tokenizer, always loaded offline.

`llm: path/to/dir` is a local Hugging Face directory (config, weights, tokenizer),
loaded with `local_files_only=True`: nothing is ever downloaded. `llm: tiny-random`
builds a small random Llama and a byte-level BPE tokenizer trained on the
dataset's own texts, saves both once as a normal HF directory (so resume and
`sltrain evaluate` see the very same frozen weights), then loads that directory
like any other. The tiny tokenizer is Llama-3-shaped: Llama-3's special tokens
(<|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>, ...) and
Llama-3-Instruct's chat template, so tests and demos run the chat layout that a
real Llama-3-Instruct directory gets. transformers is imported only here and by
the sign_llava recipe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import torch

from sldata.errors import UserError
from sldata.io import atomic_path

TINY = "tiny-random"
#: Llama-3(-Instruct)'s roles for the tiny tokenizer: bos, eos = end of turn, no pad of its own.
SPECIALS = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
LLAMA3_SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>"]
#: Meta-Llama-3-8B-Instruct's `chat_template` (tokenizer_config.json), verbatim.
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
#: Bumped when the tiny tokenizer changes: a run directory's tiny LM is rebuilt only in a new out_dir.
TINY_TOKENIZER = "llama3-chat-1"


def _quiet() -> None:
    """transformers' progress bars and advice go to the terminal; the library never prints."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer trained offline on `texts` (every string encodes)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=LLAMA3_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(sorted(set(texts)), trainer=trainer)
    bos = SPECIALS["bos_token"]
    # like Llama-3: encoding with special tokens on prepends <|begin_of_text|>
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                      special_tokens=[(bos, tok.token_to_id(bos))])])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIALS)
    out.chat_template = LLAMA3_CHAT_TEMPLATE
    return out


def build_tiny_llm(out_dir: Path, texts: Iterable[str], tiny: Any, max_positions: int) -> Path:
    """Create the tiny-random LM + tokenizer directory at `out_dir` (atomically) unless it exists."""
    # what the weights depend on (RoPE needs no position table), and the tokenizer's kind
    wanted = {**tiny.model_dump(), "tokenizer": TINY_TOKENIZER}
    if (out_dir / "config.json").exists():
        have = json.loads((out_dir / "config.json").read_text()).get("sldata_tiny")
        if have != wanted:
            raise UserError(f"{out_dir} holds a tiny-random LM built with {have}, not {wanted}: "
                            "its checkpoints belong to that LM; choose a new trainer.out_dir")
        return out_dir
    from transformers import LlamaConfig, LlamaForCausalLM

    _quiet()
    tokenizer = train_tokenizer(texts, tiny.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers, num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_kv_heads, max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False)
    config.sldata_tiny = wanted  # saved in config.json: how this directory was made
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(tiny.seed)
        model = LlamaForCausalLM(config)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def load_local_llm(path: str | Path, dtype: torch.dtype, attn_implementation: str = "sdpa"):
    """(model, tokenizer) from a local HF directory, offline; UserError when unusable."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"model.llm: {path} is not a local Hugging Face model directory (no config.json); "
                        f"give a downloaded model dir or '{TINY}'")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype,
                                                     attn_implementation=attn_implementation)
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"model.llm: cannot load {path}: {exc}") from None
    if tokenizer.pad_token is None:  # Llama-3 has none; padded positions are masked anyway
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """No gradients, eval mode: the LM is a fixed function of its inputs."""
    model.requires_grad_(False)
    model.eval()
    return model


def fingerprint(path: str | Path) -> str:
    """Identity of a frozen LM directory: config, tokenizer, weight file names, sizes and first MiB."""
    path = Path(path)
    h = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
        with open(f, "rb") as fh:  # the header and first weights: cheap even for 8B shards
            h.update(fh.read(1 << 20))
    tok = path / "tokenizer.json"
    if tok.exists():
        h.update(tok.read_bytes())
    return h.hexdigest()[:16]


def describe(model: torch.nn.Module) -> dict[str, Any]:
    cfg = model.config
    return {"hidden_size": cfg.hidden_size, "layers": cfg.num_hidden_layers,
            "params": sum(p.numel() for p in model.parameters()),
            "config": json.loads(cfg.to_json_string(use_diff=True)) if hasattr(cfg, "to_json_string") else {}}
