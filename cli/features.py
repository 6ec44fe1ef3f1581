"""`sldata mock`: the embedded demo feature datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RichProgress, console, print_json, split_csv, user_errors


def register(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def mock(
        out: Optional[Path] = typer.Argument(None, help="Output dir (default mock_data for v1, mock_data_multi for v2)."),
        layout: str = typer.Option("v1", "--layout", help="v1 (one file per rep and split) or v2 (sharded)."),
        videos: int = typer.Option(6, "--videos", min=1, help="Videos per split."),
        clips: int = typer.Option(12, "--clips", min=1, help="Clips per video."),
        splits: str = typer.Option("train,dev", "--splits", help="Comma-separated split names."),
        reps: str = typer.Option("dino,mae,pose,sign2vec", "--reps", help="Comma-separated representations."),
        seed: int = typer.Option(0, "--seed", min=0, help="Random seed (any integer >= 0): same seed, same bytes."),
        shard_size: int = typer.Option(2, "--shard-size", min=1, help="v2 only: videos per shard."),
        real_dims: bool = typer.Option(False, "--real-dims", help="Use the real feature sizes (dino 1152, pose 208)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty OUT."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ) -> None:
        """Write a mock feature dataset in the Sign_LLaVA layout (demo and test data)."""
        from sldata.mock import REAL_DIMS, write_mock

        target = out or Path("mock_data" if layout == "v1" else "mock_data_multi")
        summary = write_mock(target, layout=layout, videos=videos, clips=clips, splits=split_csv(splits),
                             reps=split_csv(reps), seed=seed, shard_size=shard_size,
                             dims=REAL_DIMS if real_dims else None, overwrite=overwrite,
                             progress=RichProgress(quiet))
        if json_out:
            print_json(summary)
            return
        per_split = ", ".join(f"{s}: {v['videos']} videos / {v['clips']} clips" for s, v in summary["splits"].items())
        console.print(f"wrote {layout} mock dataset [bold]{target}[/] ({per_split}; reps {', '.join(summary['reps'])})")
