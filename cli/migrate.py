"""`sldata upgrade-annotations` and `sldata shard`: v1 → v2 migration (SPEC §2.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import typer

from rich.markup import escape

from .common import RichProgress, console, err_console, fail, human_bytes, print_json, split_csv, user_errors


def _per_shard(counts: list[int]) -> str:
    """[1000, 1000, 1000, 250] → '1000 ×3 + 250'."""
    if not counts:
        return "-"
    head = counts[:-1] if len(counts) > 1 and counts[-1] != counts[0] else counts
    text = f"{head[0]} ×{len(head)}" if len(head) > 1 else str(head[0])
    return text + (f" + {counts[-1]}" if head is not counts else "")


def _problem_lines(findings: list, limit: int = 10) -> Iterator[str]:
    """Human lines for the summary, at most `limit` per finding code (the rest is in --json)."""
    seen: dict[str, int] = {}
    for f in findings:
        seen[f.code] = seen.get(f.code, 0) + 1
        if seen[f.code] <= limit:
            parts = [p for p in (f.rep and f"rep={f.rep}", f.video and f"video={f.video}",
                                 f.clip and f"clip={f.clip}") if p]
            yield f"{f.code}: {' '.join(parts)} {f.message}".replace("  ", " ")
    for code, n in seen.items():
        if n > limit:
            yield f"{code}: ... and {n - limit} more (see --json)"


def register(app: typer.Typer) -> None:
    @app.command("upgrade-annotations")
    @user_errors
    def upgrade_annotations(
        src: Path = typer.Argument(..., help="A v1 (or v2) annotation.SPLIT.json."),
        out: Optional[Path] = typer.Option(None, "-o", "--out",
                                           help="Output file (default: IN's name with .v2.json, beside it)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT (never IN)."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary (errors still go to stderr)."),
    ) -> None:
        """Upgrade a v1 annotation to v2: add `clip_order` in numeric clip order, keep everything else."""
        from sldata.io import DuplicateKeyError
        from sldata.upgrade import upgrade_annotation_file

        try:
            report = upgrade_annotation_file(src, out, overwrite=overwrite)
        except DuplicateKeyError as exc:  # invalid data, found: exit 1 (SPEC §4), nothing written
            raise fail(escape(str(exc)), 1) from None
        if json_out:
            print_json(report.to_dict())
            return
        if quiet:
            return
        what = (f"added clip_order to {report.upgraded_videos} of {report.videos} videos" if report.changed
                else f"already v2, copied unchanged ({report.videos} videos")
        console.print(f"{what}{' (' if report.changed else ', '}{report.clips} clips) → [bold]{report.output}[/]",
                      highlight=False, soft_wrap=True)
        for video, keys in report.nonnumeric.items():
            console.print(f"[yellow]non-integer clip keys[/] in {video}: {', '.join(keys)} "
                          "(sorted naturally after the integer keys)", highlight=False, soft_wrap=True)

    @app.command("shard")
    @user_errors
    def shard_cmd(
        src: Path = typer.Argument(Path("mock_data"), help="v1 or v2 feature dataset."),
        dst: Optional[Path] = typer.Argument(None, help="Output v2 dataset (default: SRC_multi)."),
        size: int = typer.Option(1000, "--size", "-n", min=1, help="Videos per shard."),
        reps: Optional[str] = typer.Option(None, "--reps", help="Comma-separated reps (default: all)."),
        splits: Optional[str] = typer.Option(None, "--splits", help="Comma-separated splits (default: all)."),
        compression: str = typer.Option("keep", "--compression",
                                        help="keep (bit-exact copy), none, lzf, gzip or gzip:LEVEL."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty DST."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; write nothing."),
        strict: bool = typer.Option(False, "--strict",
                                    help="Annotated videos, clips or rep files absent: write nothing, exit 1."),
        json_out: bool = typer.Option(False, "--json", help="Print the plan and result as JSON."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    ) -> None:
        """Turn a v1 (or v2) feature dataset into v2 shards of SIZE videos, verified before it appears."""
        from sldata.io import DuplicateKeyError
        from sldata.shard import VerificationError, shard

        try:
            result = shard(src, dst, size, reps=split_csv(reps), splits=split_csv(splits),
                           compression=compression, overwrite=overwrite, strict=strict, dry_run=dry_run,
                           progress=RichProgress(quiet or json_out))
        except (VerificationError, DuplicateKeyError) as exc:
            # the source holds a repeated JSON key, or the copy does not match it: exit 1, nothing written
            # (a garbled compressed chunk is an unreadable input: exit 2 through user_errors)
            raise fail(escape(str(exc)), 1) from None
        plan = result.plan
        failed = strict and bool(plan.problems)
        if json_out:
            print_json({**result.to_dict(), "ok": not failed})
        elif not quiet:
            from rich.table import Table

            table = Table(title=f"{plan.src} ({plan.src_layout}) → {plan.dst} (v2, {plan.size} videos/shard)")
            for col in ("split", "rep", "shards", "videos per shard", "videos", "clips", "bytes"):
                table.add_column(col, justify="left" if col in ("split", "rep") else "right")
            for it in plan.items:
                table.add_row(it.split, it.rep, str(len(it.shards)), _per_shard([len(s) for s in it.shards]),
                              str(it.videos), str(it.clips), human_bytes(it.bytes))
            console.print(table)
            for line in _problem_lines(plan.findings):
                console.print(f"[yellow]{line}[/]", highlight=False, soft_wrap=True)
            for split, rep in plan.annotations.items():
                if rep.nonnumeric:
                    console.print(f"[yellow]{split}: {len(rep.nonnumeric)} videos with non-integer clip keys, "
                                  "sorted naturally[/]", highlight=False, soft_wrap=True)
            if result.written:
                console.print(f"wrote [bold]{plan.dst}[/] ({human_bytes(plan.total_bytes)}, "
                              f"compression {plan.compression or 'kept'}), verified", highlight=False, soft_wrap=True)
            elif not failed:
                console.print(f"dry run: nothing written ({human_bytes(plan.total_bytes)} would be copied)",
                              highlight=False, soft_wrap=True)
        if failed:
            if not json_out:
                err_console.print(f"[red]--strict: {len(plan.problems)} annotated videos, clips or rep files are "
                                  "absent; nothing written[/]", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
