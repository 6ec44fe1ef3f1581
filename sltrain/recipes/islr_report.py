"""ISLR's part of `sltrain evaluate`: prediction records, their scores, and the report files.

`sltrain.evaluation` writes `predictions.jsonl` (one `records` line per video:
key, true label, prediction, top-5 labels with scores) and `scores.json`
(`scores`: top-1 / top-5 accuracy, mean per-class accuracy, counts); this
module adds, each written atomically:

* `per_class.csv`     — class, support, correct, accuracy, top5_accuracy
* `confusion.png`     — row-normalised confusion matrix (matplotlib, Agg backend)

Everything is computed from the records alone.

A dev/test label never seen in train cannot be predicted: such videos count as
errors in the accuracies and are reported separately (`unseen_class_videos`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sldata.io import atomic_path, write_bytes_atomic

from ..data.labeled_pose import LabeledSplit


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """(k, k) counts, rows = true class, columns = predicted; rows of unseen labels (-1) skipped."""
    cm = np.zeros((k, k), dtype=np.int64)
    seen = targets >= 0
    np.add.at(cm, (targets[seen], preds[seen]), 1)
    return cm


def _plot_confusion(path: Path, cm: np.ndarray, classes: list[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=np.float64), where=rows > 0)
    size = min(4 + 0.35 * k, 24)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    if k <= 40:
        ax.set_xticks(range(k), classes, rotation=90, fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def records(split: LabeledSplit, classes: list[str], probs: np.ndarray, index: np.ndarray) -> list[dict[str, Any]]:
    """One prediction record per row of `probs` (videos x classes); row r is video `index[r]` of `split`."""
    k = len(classes)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(5, k)]
    out = []
    for r, i in enumerate(index.tolist()):
        target, pred = split.targets[i], int(order[r, 0])
        out.append({"key": split.keys[i], "label": split.labels[i], "prediction": classes[pred],
                    "correct": pred == target,
                    "top5": [{"label": classes[j], "score": round(float(probs[r, j]), 6)} for j in order[r]]})
    return out


def _hits(recs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 correct, true label among the top 5) per record."""
    top1 = np.array([r["correct"] for r in recs], dtype=bool)
    top5 = np.array([any(t["label"] == r["label"] for t in r["top5"]) for r in recs], dtype=bool)
    return top1, top5


def scores(recs: list[dict[str, Any]], classes: list[str]) -> dict[str, Any]:
    """Top-1 / top-5 accuracy, mean per-class accuracy (classes with videos), videos of unseen classes."""
    top1, top5 = _hits(recs)
    labels = np.array([r["label"] for r in recs], dtype=object)
    per_class = [float(top1[labels == name].mean()) for name in classes if (labels == name).any()]
    known = set(classes)
    return {"videos": len(recs), "classes": len(classes), "top1": float(top1.mean()), "top5": float(top5.mean()),
            "mean_class_accuracy": float(np.mean(per_class)) if per_class else None,
            "unseen_class_videos": sum(1 for r in recs if r["label"] not in known)}


def write_report(out_dir: Path, recs: list[dict[str, Any]], classes: list[str], split: str) -> dict[str, str]:
    """`per_class.csv` and `confusion.png` for `recs`; returns their paths by summary key."""
    out_dir = Path(out_dir)
    top1, top5 = _hits(recs)
    labels = np.array([r["label"] for r in recs], dtype=object)
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "support", "correct", "accuracy", "top5_accuracy"])
    for name in classes:
        rows = labels == name
        n = int(rows.sum())
        w.writerow([name, n, int(top1[rows].sum()), f"{float(top1[rows].mean()):.4f}" if n else "",
                    f"{float(top5[rows].mean()):.4f}" if n else ""])
    index = {name: c for c, name in enumerate(classes)}
    for name in sorted({r["label"] for r in recs} - set(index)):  # absent from train: listed, never hidden
        w.writerow([name, int((labels == name).sum()), 0, "0.0000", "0.0000"])
    per_class = out_dir / "per_class.csv"
    write_bytes_atomic(per_class, buf.getvalue().encode("utf-8"))

    targets = np.array([index.get(r["label"], -1) for r in recs], dtype=np.int64)
    preds = np.array([index[r["prediction"]] for r in recs], dtype=np.int64)
    confusion = out_dir / "confusion.png"
    _plot_confusion(confusion, confusion_matrix(targets, preds, len(classes)), classes,
                    f"{split}: top-1 {top1.mean():.1%} ({len(recs)} videos)")
    return {"per_class": str(per_class), "confusion": str(confusion)}
