"""Does DPC pretraining help ISLR with few labels? DPC-pretrained + fine-tune vs scratch, same budget.

CPU-sized, on synthetic signs (sldata.synthetic_pose): for every seed and every
DPC variant (`--dpc`: negatives `batch`, `same_video`, `both`; `NEG:window` draws
augmentation per window instead of per block, as the project did before), DPC is
pretrained with that seed on unlabeled videos that chain random hand motions
(signers shared across videos, as in a corpus). Then a labeled set (dev signers
never seen in train) is fine-tuned with only `--per-class` train videos per class,
from each DPC checkpoint and from random weights, with the same steps, batch,
optimizer and schedule. Also a linear probe of each encoder (frozen; only the
head trains). Prints dev top-1 as mean ± std over seeds, and the pretext
diagnostics of each DPC variant (`pretext_top1_video` / `pretext_top1_step`).

    .venv/bin/python bench/islr_pretrain_vs_scratch.py --jobs 3   # the default DPC (same_video), 600 steps
    .venv/bin/python bench/islr_pretrain_vs_scratch.py --jobs 3 --pretrain-steps 200 \
        --dpc batch:window,batch,same_video,both                   # every negatives choice, and the old per-window draw
    .venv/bin/python bench/islr_pretrain_vs_scratch.py --probe-only --work DIR --dpc ...   # signer/motion probe
    .venv/bin/python bench/islr_pretrain_vs_scratch.py --quick    # smoke run of the script
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def subset_labels(src: Path, dst_dir: Path, per_class: int) -> Path:
    """labels.train.csv holding the first `per_class` rows of each class of `src` (same dev set for every level)."""
    import csv

    rows = list(csv.DictReader(open(src, newline="", encoding="utf-8")))
    seen: dict[str, int] = {}
    keep = []
    for r in rows:
        if seen.get(r["label"], 0) < per_class:
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            keep.append(r)
    dst_dir.mkdir(parents=True, exist_ok=True)
    out = dst_dir / "labels.train.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(keep)
    return out


def feature_probe(ckpt: Path | None, pose: Path, labels: list[Path], encoder: dict[str, Any], seq_len: int,
                  seed: int = 0) -> dict[str, float]:
    """What a frozen encoder's clip features tell: the signer, or the motion (class)?

    Every labeled video (train + dev: all signers) is embedded by the frozen
    encoder + GRU (random weights when `ckpt` is None); a logistic regression is
    fit on a random half and scored on the other half, once for the signer and
    once for the class. Chance is 1/#signers and 1/#classes.
    """
    import csv

    import torch

    from schemas.config import PoseTransformConfig, STGCNConfig
    from sltrain.data.labeled_pose import LabeledPoseDataset, LabeledSplit
    from sltrain.data.transforms import PoseTransform
    from sltrain.models.classifier import SignClassifier, load_encoder

    rows = [r for p in labels for r in csv.DictReader(open(p, newline="", encoding="utf-8"))]
    torch.manual_seed(seed)
    model = SignClassifier(2, "openhands27", STGCNConfig(**encoder), 1, 2, seq_len)
    if ckpt is not None:
        load_encoder(model, torch.load(ckpt, weights_only=True)["model"], ckpt)
    split = LabeledSplit("all", [r["key"] for r in rows], [r["label"] for r in rows], [0] * len(rows))
    ds = LabeledPoseDataset(pose, split, 8 * seq_len, PoseTransform(PoseTransformConfig(), train=False))
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        feats = model.eval().features(x)
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(rows), generator=g)
    fit, test = perm[: len(rows) // 2], perm[len(rows) // 2:]
    out = {}
    for what, col in (("signer", "signer"), ("motion", "label")):
        names = sorted({r[col] for r in rows})
        y = torch.tensor([names.index(r[col]) for r in rows])
        head = torch.nn.Linear(feats.shape[1], len(names))
        opt = torch.optim.Adam(head.parameters(), lr=0.05, weight_decay=1e-3)
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(head(feats[fit]), y[fit]).backward()
            opt.step()
        out[f"probe_{what}"] = (head(feats[test]).argmax(1) == y[test]).float().mean().item()
    return out


_JOB: Any = None  # the per-seed closure, inherited by forked workers


def _run_job(seed: int) -> Any:
    return _JOB(seed)


def mean_sd(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--per-class", default="2,5", help="labeled train videos per class, one level per entry")
    ap.add_argument("--finetune-steps", default="60,150", help="fine-tune steps for each --per-class level")
    ap.add_argument("--dev-per-class", type=int, default=15)
    ap.add_argument("--unlabeled", type=int, default=300, help="unlabeled videos for DPC")
    ap.add_argument("--signers", type=int, default=16, help="signers of the unlabeled videos")
    ap.add_argument("--pretrain-steps", type=int, default=600)
    ap.add_argument("--dpc", default="same_video",
                    help="DPC variants: NEGATIVES[:window] (window: augmentation drawn per window)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads per process")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--work", type=Path, default=None, help="keep files here (default: a temp dir)")
    ap.add_argument("--probe-only", action="store_true",
                    help="only the frozen-feature signer/motion probe of the checkpoints already in --work")
    a = ap.parse_args()
    levels = [int(x) for x in a.per_class.split(",")]
    ft_steps = dict(zip(levels, (int(x) for x in a.finetune_steps.split(","))))
    if len(ft_steps) != len(levels):
        ap.error("--finetune-steps needs one entry per --per-class level")
    variants = a.dpc.split(",")
    if a.quick:
        a.unlabeled, a.pretrain_steps, a.seeds, a.dev_per_class = 16, 5, 2, 3
        ft_steps = {k: 6 for k in ft_steps}

    import torch

    from sldata.synthetic_pose import write_labeled, write_unlabeled
    from sltrain.config import build_config
    from sltrain.loop import train
    from sltrain.metrics import read_csv

    torch.set_num_threads(a.threads)
    work = a.work or Path(tempfile.mkdtemp(prefix="islr_bench_"))
    encoder = {"channels": [16, 32, 32], "temporal_kernel": 3}
    joints = {"joints": "openhands27", "coords": 2, "normalize": True}
    seq_len = 4

    t0 = time.perf_counter()
    if a.probe_only:
        signs_dir = a.work / "signs"
        lab = [signs_dir / "labels.train.csv", signs_dir / "labels.dev.csv"]
        print(f"{'encoder':<18} {'seed':<5} probe_signer  probe_motion")
        table: dict[str, list[dict[str, float]]] = {}
        for v in ["random", *variants]:
            for seed in range(a.seeds):
                ck = None if v == "random" else sorted(
                    (a.work / f"dpc_{v.replace(':', '_')}_{seed}" / "checkpoints").glob("step_*.pt"))[-1]
                r = feature_probe(ck, signs_dir / "poses.h5", lab, encoder, seq_len, seed)
                table.setdefault(v, []).append(r)
                print(f"{v:<18} {seed:<5} {r['probe_signer']:.3f}         {r['probe_motion']:.3f}", flush=True)
        for v, rs in table.items():
            sig, mot = mean_sd([r["probe_signer"] for r in rs]), mean_sd([r["probe_motion"] for r in rs])
            print(f"{v:<18} mean  {sig}  {mot}")
        return
    unlabeled = write_unlabeled(work / "unlabeled.h5", videos=a.unlabeled, seed=100, classes=a.classes,
                                signers=a.signers)
    signs = write_labeled(work / "signs", classes=a.classes, seed=200,
                          per_class={"train": max(levels), "dev": a.dev_per_class})
    train_labels = {n: subset_labels(signs.labels["train"], work / f"labels_{n}", n) for n in levels}

    def pretrain(variant: str, seed: int) -> tuple[Path, dict[str, float]]:
        neg, _, per = variant.partition(":")
        res = train(build_config({
            "recipe": "dpc",
            "data": {"path": str(unlabeled), "num_seq": 6, "seq_len": seq_len, "downsample": 1, "pred_step": 2,
                     "windows_per_video": 4, "transform": joints, "augment": {"per": per or "block"}},
            "model": {"encoder": encoder, "gru_layers": 1, "negatives": neg},
            "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-5, "warmup_steps": 20},
            "trainer": {"out_dir": str(work / f"dpc_{variant.replace(':', '_')}_{seed}"), "max_steps": a.pretrain_steps,
                        "batch_size": 32, "num_workers": 0, "device": "cpu", "log_every": 25,
                        "save_every": a.pretrain_steps, "tensorboard": False, "seed": seed, "threads": a.threads},
        }))
        rows = read_csv(res.out_dir / "train.csv")
        last = rows[-1]
        diag = {k: float(last[k]) for k in ("loss", "top1", "pretext_top1_video", "pretext_top1_step")}
        diag["first_loss"] = float(rows[0]["loss"])
        assert res.last_checkpoint is not None
        return res.last_checkpoint, diag

    def finetune(init: str, ckpt: Path | None, frozen: bool, seed: int, level: int, tag: str) -> float:
        model: dict[str, Any] = {"init": init, "freeze_encoder": frozen, "encoder": encoder, "gru_layers": 1,
                                 "head_dropout": 0.1}
        if ckpt is not None:
            model["checkpoint"] = str(ckpt)
        steps = ft_steps[level]
        res = train(build_config({
            "recipe": "islr",
            "data": {"pose": str(signs.pose),
                     "labels": {"train": str(train_labels[level]), "dev": str(signs.labels["dev"])},
                     "eval_split": "dev", "num_frames": 8 * seq_len, "seq_len": seq_len,
                     "transform": {**joints, "shear": 0.1, "rotation_deg": 6}},
            "model": model,
            "optim": {"name": "adam", "lr": 1e-3, "warmup_steps": 10},
            "trainer": {"out_dir": str(work / f"ft_{tag}_{'probe' if frozen else 'full'}_{level}_{seed}"),
                        "max_steps": steps, "batch_size": 16, "num_workers": 0, "device": "cpu",
                        "log_every": 25, "eval_every": steps, "save_every": steps, "threads": a.threads,
                        "tensorboard": False, "seed": seed},
        }))
        return res.eval_metrics["dev_top1"]

    def one_seed(seed: int) -> tuple[dict[tuple[int, str, str], float], dict[str, dict[str, float]]]:
        torch.set_num_threads(a.threads)
        ckpts: dict[str, Path] = {}
        diag: dict[str, dict[str, float]] = {}
        accs: dict[tuple[int, str, str], float] = {}
        for v in variants:
            t = time.perf_counter()
            ckpts[v], d = pretrain(v, seed)
            diag[v] = d
            print(f"[seed {seed}] DPC {v}: {a.pretrain_steps} steps in {time.perf_counter() - t:.0f} s; loss "
                  f"{d['first_loss']:.3f} -> {d['loss']:.3f}, top1 {d['top1']:.3f}, pretext_top1_video "
                  f"{d['pretext_top1_video']:.3f}, pretext_top1_step {d['pretext_top1_step']:.3f}", flush=True)
        for level in levels:
            for frozen in (False, True):
                mode = "linear probe" if frozen else "fine-tune"
                for init in ["scratch", *variants]:
                    acc = finetune("scratch" if init == "scratch" else "dpc", ckpts.get(init), frozen, seed, level,
                                   init.replace(":", "_"))
                    accs[(level, mode, init)] = acc
                    print(f"[seed {seed}] {level}/class {mode} {init}: dev top-1 {acc:.3f}", flush=True)
        return accs, diag

    if a.jobs > 1:
        import multiprocessing as mp

        global _JOB
        _JOB = one_seed
        with mp.get_context("fork").Pool(min(a.jobs, a.seeds), maxtasksperchild=1) as pool:
            per_seed = pool.map(_run_job, range(a.seeds), chunksize=1)
    else:
        per_seed = [one_seed(seed) for seed in range(a.seeds)]
    # results[(level, mode, init)] = [acc per seed]; diags[variant] = [dict per seed]
    results: dict[tuple[int, str, str], list[float]] = {}
    diags: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for accs, diag in per_seed:
        for k, v in accs.items():
            results.setdefault(k, []).append(v)
        for v in variants:
            diags[v].append(diag[v])
    (work / "results.json").write_text(json.dumps(
        {"results": {"|".join(map(str, k)): v for k, v in results.items()}, "diagnostics": diags}, indent=1))

    print(f"\nDPC: {a.pretrain_steps} steps x 32 windows (6 blocks x 4 frames, predict 2) on {a.unlabeled} unlabeled "
          f"videos by {a.signers} signers; augmentation N(0, 0.1) shear and rotation; {a.seeds} seeds")
    print(f"{'DPC variant':<18} {'loss first -> last':<20} {'top1':<16} {'pretext_top1_video':<20} pretext_top1_step")
    for v in variants:
        ds = diags[v]
        first, last = statistics.mean(d["first_loss"] for d in ds), statistics.mean(d["loss"] for d in ds)
        print(f"{v:<18} {first:.3f} -> {last:.3f}"
              f"       {mean_sd([d['top1'] for d in ds]):<16} {mean_sd([d['pretext_top1_video'] for d in ds]):<20} "
              f"{mean_sd([d['pretext_top1_step'] for d in ds])}")
    print("(chance: pretext_top1_video 1/32, pretext_top1_step 1/2)")
    for level in levels:
        print(f"\nISLR, {a.classes} classes, {level} labeled train videos per class ({a.classes * level}), "
              f"{a.classes * a.dev_per_class} dev videos by unseen signers; {ft_steps[level]} steps x batch 16; "
              f"{a.seeds} seeds; encoder {encoder['channels']}")
        print(f"{'mode':<13} {'init':<18} {'dev top-1 mean ± std':<22} per seed")
        for mode in ("fine-tune", "linear probe"):
            base = statistics.mean(results[(level, mode, "scratch")])
            for init in ["scratch", *variants]:
                accs = results[(level, mode, init)]
                diff = "" if init == "scratch" else f"  ({statistics.mean(accs) - base:+.3f} vs scratch)"
                print(f"{mode:<13} {init:<18} {mean_sd(accs):<22} " + " ".join(f"{x:.3f}" for x in accs) + diff)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; files in {work}")


if __name__ == "__main__":
    main()
