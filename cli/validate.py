"""`sldata validate`: check a feature dataset, pose h5 or pkl directory (SPEC §5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from .common import RichProgress, console, print_json, user_errors

EXAMPLES = 3  # findings shown per code; the rest are counted


def register(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def validate(
        path: Path = typer.Argument(..., help="A v1/v2 feature dataset dir, a pose h5, or a dir of pose pkls."),
        deep: bool = typer.Option(False, "--deep", help="Also read every array once (NaN/Inf, pose range)."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        split: Optional[str] = typer.Option(None, "--split", help="Only this split."),
        labels: Optional[List[Path]] = typer.Option(None, "--labels", help="labels.SPLIT.csv to check against a "
                                                    "pose h5 (repeat the option for several files)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Processes for big inputs (default: cores)."),
        videos: Optional[Path] = typer.Option(None, "--videos", help="A folder of videos that must each have "
                                              "its pose in PATH (pose-missing otherwise)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    ) -> None:
        """Check a dataset: exit 0 valid, 1 problems found, 2 unusable input."""
        from sldata.validate import validate as run

        report = run(path, deep=deep, split=split, labels=labels, workers=workers,
                     progress=RichProgress(quiet or json_out), videos=videos)
        if json_out:
            print_json(report.to_dict())
        else:
            print_summary(path, report)
        if report.layout == "unknown":
            raise typer.Exit(2)
        raise typer.Exit(0 if report.ok else 1)


def _where(f: Any) -> str:
    parts = [f"{k}={v}" for k, v in (("rep", f.rep), ("video", f.video), ("clip", f.clip)) if v is not None]
    name = Path(f.file).name if f.file else ""
    return " ".join([name, *parts]).strip()


def print_summary(path: Path, report: Any) -> None:
    """One screen: a verdict, findings grouped by code (a few examples each), a stats line."""
    from rich.markup import escape
    from rich.table import Table

    errors, warnings = len(report.errors), len(report.warnings)
    verdict = ("[bold green]valid[/]" if report.ok else "[bold red]INVALID[/]")
    console.print(f"{escape(str(path))}: {report.layout} — {verdict} "
                  f"({errors} error(s), {warnings} warning(s))", highlight=False, soft_wrap=True)
    if report.findings:
        groups: dict[str, list[Any]] = {}
        for f in report.findings:
            groups.setdefault(f.code, []).append(f)
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("code")
        table.add_column("n", justify="right")
        table.add_column("examples", overflow="fold")
        order = sorted(groups, key=lambda c: (groups[c][0].severity != "error", c))
        for code in order:
            fs = groups[code]
            style = "red" if fs[0].severity == "error" else "yellow"
            lines = [f"{escape(_where(f))}: {escape(f.message)}" for f in fs[:EXAMPLES]]
            if len(fs) > EXAMPLES:
                lines.append(f"... and {len(fs) - EXAMPLES} more")
            table.add_row(f"[{style}]{code}[/]", str(len(fs)), "\n".join(lines))
        console.print(table)
    console.print(_stats_line(report.stats), highlight=False, style="dim", soft_wrap=True)


def _stats_line(s: dict[str, Any]) -> str:
    if "splits" in s:
        per = ", ".join(f"{k}: {v['videos']} videos / {v['clips']} clips" for k, v in s.get("per_split", {}).items())
        return (f"splits {', '.join(s['splits'])} ({per}); reps {', '.join(s.get('reps', [])) or 'none'}; "
                f"{s.get('h5_files', 0)} h5 files, {s.get('datasets', 0)} datasets"
                + (" (deep)" if s.get("deep") else ""))
    if "frames" in s:
        line = (f"{s.get('videos', 0)} videos, {s.get('frames', 0)} frames, "
                f"{s.get('keypoints')} keypoints ({s.get('keypoint_set') or 'unknown set'})"
                + (" (deep)" if s.get("deep") else ""))
        lab = s.get("labels")
        if lab:
            per = ", ".join(f"{v['split'] or name}: {v['rows']} rows / {v['classes']} labels"
                            for name, v in lab["files"].items())
            line += f"; labels {per}; {lab['labeled_keys']} of {lab['pose_keys']} keys labeled"
            if lab.get("classes") is not None:
                line += f"; {lab['classes']} train classes"
        return line
    return ""
