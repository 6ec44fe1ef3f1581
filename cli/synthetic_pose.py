"""`python -m cli.synthetic_pose OUT`: write a synthetic labeled sign set (demo and bench data).

Not an `sldata` command (the data is made-up motion, not a format tool): a tiny
entry point beside them so the demo and README can make ISLR data in one line.
"""

from __future__ import annotations

from pathlib import Path

import typer

from .common import console, print_json, user_errors

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})


@app.command()
@user_errors
def main(
    out: Path = typer.Argument(..., help="Output dir: poses.h5 + labels.SPLIT.csv (or FILE.h5 with --unlabeled)."),
    classes: int = typer.Option(4, "--classes", help="Number of motion classes (2-8)."),
    train: int = typer.Option(20, "--train", help="Train videos per class."),
    dev: int = typer.Option(5, "--dev", help="Dev videos per class."),
    test: int = typer.Option(5, "--test", help="Test videos per class (0: no test split)."),
    unlabeled: int = typer.Option(0, "--unlabeled", help="Instead: write OUT as an unlabeled pose h5 of N videos."),
    signers: int = typer.Option(0, "--signers", help="People signing (default 8 labeled: splits never share one; "
                                                     "16 unlabeled: many videos each)."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same arrays."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Write synthetic signs: the right hand traces a circle, line, zigzag, square, ..."""
    from sldata.synthetic_pose import write_labeled, write_unlabeled

    if unlabeled:
        path = write_unlabeled(out, videos=unlabeled, seed=seed, signers=signers or 16)
        summary = {"pose": str(path), "videos": unlabeled, "signers": signers or 16}
        if json_out:
            print_json(summary)
        else:
            console.print(f"wrote {unlabeled} unlabeled synthetic videos to [bold]{path}[/]")
        return
    per_class = {s: n for s, n in (("train", train), ("dev", dev), ("test", test)) if n > 0}
    res = write_labeled(out, classes=classes, per_class=per_class, seed=seed, signers=signers or 8)
    summary = {"pose": str(res.pose), "labels": {k: str(v) for k, v in res.labels.items()},
               "classes": res.classes, "videos": res.counts}
    if json_out:
        print_json(summary)
        return
    counts = ", ".join(f"{s} {n}" for s, n in res.counts.items())
    console.print(f"wrote [bold]{res.pose}[/] and labels ({counts} videos; classes {', '.join(res.classes)})")


if __name__ == "__main__":
    app()
