"""The `sltrain` command: pretrain (dpc, sign_llava), finetune (islr), evaluate (any recipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from sltrain.recipes import recipes_of

from .common import RichProgress, console, err_console, print_json, user_errors

app = typer.Typer(
    name="sltrain",
    help="Train on validated sign-language data: DPC pretraining, ISLR fine-tuning, Sign_LLaVA projectors.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

CFG_ARG = typer.Argument(..., help="YAML config (see configs/); its first line gives the run command.")
SET_OPT = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                       help="Override a config key, e.g. --set trainer.max_steps=100 (repeatable).")


def _print_findings(report: Any) -> None:
    from rich.table import Table

    table = Table(title="input validation failed", show_lines=False)
    for col in ("severity", "code", "file", "video", "message"):
        table.add_column(col)
    for f in report.findings:
        table.add_row(f.severity, f.code, f.file or "", f.video or "", f.message)
    err_console.print(table)


def _train(command: str, cfg_path: Path, overrides: Optional[List[str]], quiet: bool, json_out: bool) -> None:
    from sltrain.config import load_config
    from sltrain.loop import InputInvalid, MainFailed, train
    from sltrain.recipes import check_command

    cfg = load_config(cfg_path, overrides or [])
    check_command(cfg.recipe, command, str(cfg_path))
    log = (lambda msg: None) if quiet or json_out else (lambda msg: err_console.print(msg, highlight=False))
    try:
        result = train(cfg, progress=RichProgress(quiet or json_out), log=log)
    except InputInvalid as exc:
        if json_out:
            print_json({"ok": False, "errors": [f.to_dict() for f in exc.report.errors]})
        else:
            _print_findings(exc.report)
            err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1)
    except MainFailed as exc:  # torchrun, rank > 0: rank 0 refused the run and has said why
        raise typer.Exit(exc.code)
    if result.rank != 0:  # under torchrun only rank 0 reports
        return
    if json_out:
        print_json(result.to_dict())
        return
    m = result.last_metrics
    rate = f"{result.samples_per_s:.1f} {result.sample_unit}/s" if result.samples_per_s else "n/a"
    shown = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if k not in ("lr",))
    console.print(f"[bold]{result.recipe}[/] trained to step {result.steps} on {result.device}"
                  f" (x{result.world_size}); {rate}")
    if shown:
        console.print(f"last: {shown}")
    if result.eval_metrics:
        console.print("eval: " + ", ".join(f"{k} {v:.4g}" for k, v in result.eval_metrics.items()))
    console.print(f"outputs in {result.out_dir}/ (config.yaml, train.csv, tensorboard/, checkpoints/)"
                  + (f"; last checkpoint {result.last_checkpoint.name}" if result.last_checkpoint else ""))


@app.command(help=f"Run a pretraining recipe ({', '.join(recipes_of('pretrain'))}) from a YAML config; "
             "resumes with trainer.resume=auto.")
@user_errors
def pretrain(
    config: Path = CFG_ARG,
    overrides: Optional[List[str]] = SET_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    _train("pretrain", config, overrides, quiet, json_out)


@app.command(help=f"Run a supervised recipe ({', '.join(recipes_of('finetune'))}) from a YAML config; "
             "same loop, checkpoints and logs as pretrain.")
@user_errors
def finetune(
    config: Path = CFG_ARG,
    overrides: Optional[List[str]] = SET_OPT,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log lines."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    _train("finetune", config, overrides, quiet, json_out)


@app.command()
@user_errors
def evaluate(
    config: Path = CFG_ARG,
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint file (checkpoints/step_*.pt or best.pt)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to score (default: test if the data has it, else dev)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output dir (default: trainer.out_dir/eval_SPLIT)."),
    overrides: Optional[List[str]] = SET_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score a checkpoint on a split with the config's recipe; writes predictions (JSONL) and scores."""
    from sltrain import evaluate as run_evaluation
    from sltrain.config import load_config

    summary = run_evaluation(load_config(config, overrides or []), checkpoint, split, out)
    if json_out:
        print_json(summary)
        return
    for k, v in summary.items():
        console.print(f"{k}: {v}", highlight=False)


@app.callback()
def _root() -> None:
    """Run `COMMAND --help` for each command's options."""


def main() -> None:
    app()


if __name__ == "__main__":  # torchrun -m cli.sltrain_app ...
    main()
