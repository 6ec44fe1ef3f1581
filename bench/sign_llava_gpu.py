"""Benchmark the sign_llava recipe: its data path on CPU, and its training step on a GPU.

(a) loader (always runs): clips/s of the recipe's loader (FeatureClips through
    FeatureDataset's per-worker handle pool + SequenceBuilder collate, W workers)
    beside a baseline loader that reopens the HDF5 file for every read (what a
    dataset without a handle pool does), same clips, same collate.
(b) GPU step (only when CUDA exists; otherwise it prints "no CUDA" and stops):
    a random-initialised model with Llama-3-8B-Instruct's architecture in bf16
    (no weights are downloaded; the shape is what matters), frozen; mlp2x_gelu
    projectors from the real feature sizes (dino 1152, mae 768, pose 208,
    sign2vec 768) read from a mock v2 dataset through the real loader. It times
    forward + backward (into the projectors, through the frozen LM) and reports
    tokens/s, peak memory, data-wait fraction and model FLOPs utilisation, beside
    the usual LLaVA-style baseline step (eager attention, full-sequence logits
    with the labels loss) as a ratio.

MFU counts the FLOPs the step must do with a frozen LM: per token 4·N (forward,
plus the backward into activations; weight gradients of the LM are never computed)
+ 12·L·d·S for attention (forward + backward, full-matrix convention), with N the
LM's non-embedding, non-head parameters; the head adds 4·V·d per labelled token
(the recipe only runs it there); projectors add 6·P per visual token. Peak: 989
TFLOPS bf16 dense for H100/H200 (override with --peak-tflops).

    .venv/bin/python bench/sign_llava_gpu.py                       # (a), and (b) if a GPU exists
    .venv/bin/python bench/sign_llava_gpu.py --batch 8 --frames 64:160 --steps 10 [--gc] [--layout compact]

Sequences are built in upstream Sign_LLaVA's chat layout by default (Llama-3 chat
template, system prompt, one marker pair per rep): every sample carries the system
prompt's and the template's text tokens beside the visual ones; `--layout compact`
for the older, shorter sequence.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPS = ["dino", "mae", "pose", "sign2vec"]
PROMPT = "Translate the following American Sign Language video into English."


def make_collate(tokenizer, args):
    """The recipe's collate for `args.layout`, with the config's defaults (upstream's wording)."""
    from schemas.config_sign_llava import UPSTREAM_CONTEXT_INSTRUCTION, UPSTREAM_INSTRUCTION, UPSTREAM_SYSTEM_PROMPT
    from sltrain.models.sign_llava import ChatSequenceBuilder, SequenceBuilder

    if args.layout == "chat":
        return ChatSequenceBuilder(tokenizer, REPS, args.max_length, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_INSTRUCTION,
                                   UPSTREAM_CONTEXT_INSTRUCTION)
    return SequenceBuilder(tokenizer, REPS, args.max_length, PROMPT)


def make_data(root: Path, videos: int, clips: int, frames: tuple[int, int]) -> Path:
    from sldata.mock import REAL_DIMS, write_mock

    out = root / "mock_real_multi"
    write_mock(out, layout="v2", videos=videos, clips=clips, splits=["train"], reps=REPS, seed=0,
               shard_size=max(1, videos // 4), dims=REAL_DIMS, min_frames=frames[0], max_frames=frames[1])
    return out


class ReopenEveryRead:
    """Baseline dataset: same items, but each feature read opens and closes its HDF5 file."""

    def __init__(self, clips):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        import h5py
        import numpy as np
        import torch

        ref = self.clips.items[i]
        view = self.clips.dataset.split(self.clips.split)
        feats = {}
        for rep in self.clips.reps:
            with h5py.File(view.h5_file(ref.video, rep), "r") as f:
                feats[rep] = torch.from_numpy(np.asarray(f[ref.video][ref.clip][()], dtype=np.float32))
        return {"video": ref.video, "clip": ref.clip, "target": ref.target, "context": list(ref.context),
                "features": feats}


def loader_rate(dataset, collate, batch: int, workers: int, epochs: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=collate,
                        shuffle=True, persistent_workers=False)
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for b in loader:
            n += b["input_ids"].shape[0]
    return n / (time.perf_counter() - t0)


def bench_loader(data: Path, tokenizer, args) -> None:
    from sltrain.data.features import FeatureClips

    clips = FeatureClips(data, "train", REPS, context_clips=2)
    collate = make_collate(tokenizer, args)
    rows = []
    for _ in range(args.repeat):  # alternate, keep the best of each
        rows.append((loader_rate(clips, collate, args.batch, args.workers, args.epochs),
                     loader_rate(ReopenEveryRead(clips), collate, args.batch, args.workers, args.epochs)))
    ours, base = max(r[0] for r in rows), max(r[1] for r in rows)
    print(f"(a) loader, {len(clips)} clips x {len(REPS)} real-size reps, batch {args.batch}, "
          f"{args.workers} workers, best of {args.repeat}:")
    print(f"    sign_llava loader     {ours:9.1f} clips/s")
    print(f"    reopen-per-read       {base:9.1f} clips/s")
    print(f"    ratio ours/baseline   {ours / base:9.2f}x")


def llama3_8b_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                       rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)


def step_flops(model, batch) -> float:
    lm = model.lm
    cfg = lm.config
    d, layers, vocab = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size
    n = sum(p.numel() for name, p in lm.named_parameters() if "embed_tokens" not in name and "lm_head" not in name)
    am = batch["attention_mask"]
    lengths = am.sum(1).double()
    tokens = float(lengths.sum())
    attn = float((12 * layers * d * lengths * lengths).sum())  # per sequence: tokens x S
    labelled = float((batch["labels"] != -100).sum())
    proj = sum(6 * sum(p.numel() for p in model.projectors[r].parameters()) * float((pos >= 0).sum())
               for r, pos in batch["positions"].items())
    return 4 * n * tokens + attn + 4 * vocab * d * labelled + proj


def baseline_loss(model, batch):
    """LLaVA-style step: logits for every position, HF's labels loss."""
    emb = model.embed(batch)
    return model.lm(inputs_embeds=emb, attention_mask=batch["attention_mask"], labels=batch["labels"],
                    use_cache=False).loss


def run_steps(model, loader, device, steps: int, warmup: int, fn) -> dict:
    import torch

    from sltrain.models.sign_llava import move_batch

    it = iter(loader)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    wait = flops = tokens = 0.0
    torch.cuda.reset_peak_memory_stats()
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            torch.cuda.synchronize()
            t0, wait, flops, tokens = time.perf_counter(), 0.0, 0.0, 0.0
        tw = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        batch = move_batch(batch, device)
        wait += time.perf_counter() - tw
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fn(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        flops += step_flops(model, batch)
        tokens += float(batch["attention_mask"].sum())
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"tokens_per_s": tokens / dt, "tflops": flops / dt / 1e12, "data_wait": wait / dt,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "step_s": dt / steps,
            "seq": tokens / steps / loader.batch_size}


def bench_gpu(data: Path, tokenizer, args) -> None:
    import torch
    from torch.utils.data import DataLoader
    from transformers import LlamaForCausalLM

    from sltrain.data.features import FeatureClips
    from sltrain.models.llm import freeze
    from sltrain.models.sign_llava import SignLlava

    if not torch.cuda.is_available():
        print("(b) GPU step: not measured (no CUDA on this machine; run on a GPU host for tokens/s, memory, MFU)")
        return
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or (989.0 if ("H100" in name or "H200" in name) else None)
    clips = FeatureClips(data, "train", REPS, context_clips=2)
    collate = make_collate(tokenizer, args)
    loader = DataLoader(clips, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers,
                        collate_fn=collate, pin_memory=True, persistent_workers=True)
    torch.manual_seed(0)
    results = {}
    for label, attn, fn in (("sign_llava (sdpa, target-only head)", "sdpa", None),
                            ("baseline (eager, full logits)", "eager", baseline_loss)):
        with torch.device(device):
            lm = LlamaForCausalLM._from_config(llama3_8b_config(tokenizer), dtype=torch.bfloat16,
                                               attn_implementation=attn)
        model = SignLlava(freeze(lm), clips.dims, "mlp2x_gelu", args.gc).to(device)
        model.train()
        try:
            results[label] = run_steps(model, loader, device, args.steps, args.warmup,
                                       fn or (lambda m, b: m(b)[0]))
        except torch.OutOfMemoryError:
            results[label] = None
        del model, lm
        torch.cuda.empty_cache()
    print(f"(b) GPU step on {name}: Llama-3-8B architecture (random init, bf16, frozen), batch {args.batch}, "
          f"frames {args.frames}, {args.steps} steps after {args.warmup} warm-up, grad ckpt {args.gc}:")
    for label, r in results.items():
        if r is None:
            print(f"    {label:38s} out of memory")
            continue
        mfu = f"{100 * r['tflops'] / peak:5.1f} %" if peak else "n/a (give --peak-tflops)"
        print(f"    {label:38s} {r['tokens_per_s']:9.0f} tok/s  {r['tflops']:6.1f} TFLOP/s  MFU {mfu}  "
              f"peak {r['peak_gib']:.1f} GiB  data-wait {100 * r['data_wait']:.1f} %  "
              f"mean seq {r['seq']:.0f}  {r['step_s'] * 1000:.0f} ms/step")
    a, b = results.values()
    if a and b:
        print(f"    ratio ours/baseline tokens/s {a['tokens_per_s'] / b['tokens_per_s']:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", default="64:160", help="min:max frames per clip (sign2vec gets half)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2, help="(a): passes over the clips per measurement")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gc", action="store_true", help="(b): gradient checkpointing through the frozen LM")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--layout", choices=["chat", "compact"], default="chat")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.frames.split(":"))

    from sltrain.data.features import FeatureClips
    from sltrain.models.llm import train_tokenizer

    with tempfile.TemporaryDirectory(prefix="sign_llava_bench_") as tmp:
        data = make_data(Path(tmp), args.videos, args.clips, (lo, hi))
        from schemas.config_sign_llava import UPSTREAM_CONTEXT_INSTRUCTION, UPSTREAM_SYSTEM_PROMPT

        texts = FeatureClips(data, "train", REPS).texts()
        texts += [PROMPT, UPSTREAM_SYSTEM_PROMPT, UPSTREAM_CONTEXT_INSTRUCTION]
        tokenizer = train_tokenizer(texts, 512)
        if not args.skip_loader:
            bench_loader(data, tokenizer, args)
        bench_gpu(data, tokenizer, args)


if __name__ == "__main__":
    main()
