"""`sldata pkl2h5` and `sldata merge-pose`: build a pose h5 from pkls, combine pose h5 files."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from .common import RichProgress, console, err_console, print_json, user_errors


def register(app: typer.Typer) -> None:
    @app.command("pkl2h5")
    @user_errors
    def pkl2h5(
        pkl_dir: Path = typer.Argument(..., help="Folder of per-video pose pkls (searched recursively)."),
        out: Path = typer.Option(..., "--out", "-o", help="The pose h5 to write (replaced atomically)."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 or float16."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w",
                                              help="Processes reading and compressing pkls "
                                                   "(default: all cores, at most 8); one writer."),
        checkpoint: float = typer.Option(60.0, "--checkpoint", min=0.0,
                                         help="Seconds between checkpoints: a killed run loses at most this much "
                                              "work, a rerun resumes."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Pack per-video pkls into one pose h5 (keys = pkl stems); resumes after a kill; bad pkls are reported."""
        from sldata.pack import pkl2h5 as pack

        report = pack(pkl_dir, out, dtype=dtype, workers=workers, checkpoint_seconds=checkpoint,
                      progress=RichProgress(quiet))
        if json_out:
            print_json(report.to_dict())
        else:
            r = report
            resumed = f", {r.resumed} kept from an interrupted run" if r.resumed else ""
            console.print(f"pkl2h5: packed {r.packed} videos ({r.frames} frames, {r.keypoint_set}, {r.dtype}"
                          f"{resumed}) -> {r.output}; {r.failed} pkl(s) failed", highlight=False, soft_wrap=True)
            for f in r.failures[:20]:
                err_console.print(f"  [red]failed[/] {escape(f.file or '')}: {escape(f.message)}", highlight=False,
                                  soft_wrap=True)
            if r.failed > 20:
                err_console.print(f"  ... {r.failed - 20} more (--json lists them all)", highlight=False)
            for w in r.warnings:
                err_console.print(f"  [yellow]warning[/] {escape(w)}", highlight=False, soft_wrap=True)
        if not report.ok:
            raise typer.Exit(1)

    @app.command("merge-pose")
    @user_errors
    def merge_pose(
        inputs: List[Path] = typer.Argument(..., help="Pose h5 files to combine (e.g. one per job-array task)."),
        out: Path = typer.Option(..., "--out", "-o", help="The combined pose h5 (appears atomically)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Combine pose h5 files bit-exactly; a key in two inputs or differing keypoint sets: exit 2, nothing written."""
        from sldata.merge import merge_pose as merge

        report = merge(inputs, out, progress=RichProgress(quiet))
        if json_out:
            print_json(report.to_dict())
            return
        console.print(f"merge-pose: {report.videos} videos ({report.frames} frames, {report.keypoint_set}) "
                      f"from {len(report.inputs)} file(s) -> {report.output}", highlight=False, soft_wrap=True)
        for w in report.warnings:
            err_console.print(f"  [yellow]warning[/] {escape(w)}", highlight=False, soft_wrap=True)
