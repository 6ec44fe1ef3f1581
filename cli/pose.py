"""`sldata extract-pose` and `sldata pkl2h5`: MediaPipe pose per video, packed into the pose h5."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import RichProgress, console, err_console, print_json, user_errors


def register(app: typer.Typer) -> None:
    @app.command("extract-pose")
    @user_errors
    def extract_pose(
        videos: Path = typer.Argument(..., help="A video, or a folder searched recursively for mp4/mov/avi/mkv/webm."),
        out: Path = typer.Option(Path("poses"), "--out", "-o", help="Folder for one <stem>.pkl per video."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w",
                                              help="Worker processes, each with its own Holistic (default: all cores; "
                                                   "with --executor ray: the cluster's CPUs)."),
        h5: Optional[Path] = typer.Option(None, "--h5", help="Also pack this run's pkls into this pose h5."),
        keypoints: str = typer.Option("openhands75", "--keypoints", "-k", help="openhands75 or holistic543."),
        model_complexity: int = typer.Option(1, "--model-complexity",
                                             help="Holistic pose model: 0 lite, 1 full (bundled), 2 heavy "
                                                  "(OpenHands). 0 and 2 need their model file installed first."),
        num_shards: int = typer.Option(1, "--num-shards", help="Split the videos among K job-array tasks, by a "
                                                               "stable hash of each video's relative path."),
        shard_index: int = typer.Option(0, "--shard-index", help="Which task this run is, 0 <= I < K."),
        video_list: Optional[Path] = typer.Option(None, "--list", help="Only the videos listed in this file, one "
                                                  "path per line, relative to VIDEOS (freezes the input list)."),
        executor: str = typer.Option("local", "--executor",
                                     help="local (process pool) or ray (needs: pip install 'sldata\\[ray]')."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Run MediaPipe Holistic over every video; resumable, failures go to OUT/failures*.jsonl."""

        from sldata.extract import ExtractOptions, run_extraction
        from sldata.extract.holistic import HolisticOptions
        from sldata.pose import keypoint_set

        keypoint_set(keypoints)  # reject a bad name before any work
        options = ExtractOptions(keypoints=keypoints, holistic=HolisticOptions(model_complexity=model_complexity))
        report = run_extraction(videos, out, options=options, workers=workers, num_shards=num_shards,
                                shard_index=shard_index, executor=executor, video_list=video_list, h5=h5,
                                progress=RichProgress(quiet),
                                notify=lambda line: err_console.print(f"note: {line}", highlight=False,
                                                                      soft_wrap=True))
        if json_out:
            print_json(report.to_dict())
        else:
            shard = f" (shard {report.shard[0]} of {report.shard[1]})" if report.shard else ""
            console.print(f"extract-pose{shard}: {report.total} video{'' if report.total == 1 else 's'}: "
                          f"{report.extracted} extracted "
                          f"({report.frames} frames, {report.frames_per_second:.1f} frames/s), "
                          f"{report.skipped} already complete, {len(report.failed)} failed -> {report.out_dir}/",
                          highlight=False, soft_wrap=True)
            for f in report.failed[:20]:
                err_console.print(f"  [red]failed[/] {f['video']}: {f['reason']}", highlight=False, soft_wrap=True)
            if len(report.failed) > 20:
                err_console.print(f"  ... {len(report.failed) - 20} more", highlight=False)
            if report.failed:
                err_console.print(f"failures listed in {report.failures_file}; rerun to retry them", highlight=False,
                                  soft_wrap=True)
            if report.h5 is not None:
                _print_pack(report.h5)
        if not report.ok:
            raise typer.Exit(1)


def _print_pack(r: dict) -> None:
    console.print(f"pkl2h5: packed {r['packed']} videos ({r['frames']} frames, {r['keypoint_set']}, {r['dtype']}) "
                  f"-> {r['output']}; {len(r['bad'])} bad pkl(s) skipped", highlight=False, soft_wrap=True)
    for b in r["bad"][:20]:
        err_console.print(f"  [red]skipped[/] {b['pkl']}: {b['reason']}", highlight=False, soft_wrap=True)
    for w in r["warnings"]:
        err_console.print(f"  [yellow]warning[/] {w}", highlight=False, soft_wrap=True)
