"""Looking at data: `sldata stats`, `sldata render`, `sldata export-pose`, `sldata import-pose`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from .common import RichProgress, console, fail, human_bytes, print_json, user_errors


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _dist(d: dict[str, Any]) -> str:
    """min med p95 max, compact enough for an 80-column terminal."""
    if not d or not d.get("n"):
        return "-"
    return " ".join(_fmt(d[k]) for k in ("min", "median", "p95", "max"))


_DT = {"float16": "f16", "float32": "f32", "float64": "f64"}


def _table(title: str, columns: list[str], left: tuple[str, ...] = ()) -> Any:
    from rich import box
    from rich.table import Table

    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in columns:
        t.add_column(col, justify="left" if col in left else "right")
    return t


def _print_feature_stats(d: dict[str, Any]) -> None:
    from sldata.io import text_name

    t = _table(f"{escape(text_name(d['path']))} ({d['kind']}); distributions: min med p95 max",
               ["split", "videos", "clips", "clips/video", "words/translation", "clip seconds"], ("split",))
    for s, v in d["splits"].items():
        t.add_row(s, _fmt(v["videos"]), _fmt(v["clips"]), _dist(v["clips_per_video"]),
                  _dist(v["translation_words"]), _dist(v["clip_seconds"]))
    console.print(t)
    cols = ["split", "rep", "frames", "frames/clip", "dim", "dtype", "files x videos", "bytes"]
    r = _table("per rep", cols, ("split", "rep", "dtype"))
    deep_rows = []
    for s, v in d["splits"].items():
        for rep, x in v["reps"].items():
            files = x["files"]
            name = rep
            if x["missing_videos"] or x["missing_clips"]:
                name += f" [red](missing {x['missing_videos']} videos, {x['missing_clips']} clips)[/]"
            if x.get("unreadable_videos") or x.get("unreadable_clips"):
                name += (f" [red](unreadable {x['unreadable_videos']} videos, "
                         f"{x['unreadable_clips']} clips)[/]")
            vids = sorted({f["videos"] for f in files if f["videos"] is not None})
            per = "-" if not vids else (str(vids[0]) if len(vids) == 1 else f"{vids[0]}-{vids[-1]}")
            r.add_row(s, name, _fmt(x["frames"]), _dist(x["frames_per_clip"]), ",".join(x["dims"]) or "-",
                      ",".join(_DT.get(k, k) for k in x["dtypes"]) or "-", f"{len(files)} x {per}",
                      human_bytes(sum(f["bytes"] for f in files)))
            if d["deep"]:
                val = x["values"]
                deep_rows.append([s, rep, _fmt(val["mean"]), _fmt(val["std"]), _fmt(val["min"]), _fmt(val["max"]),
                                  _fmt(val["non_finite"]), _fmt(val["all_zero_frames"])])
    console.print(r)
    if deep_rows:
        v = _table("values (--deep)", ["split", "rep", "mean", "std", "min", "max", "non-finite",
                                       "zero frames"], ("split", "rep"))
        for row in deep_rows:
            v.add_row(*row)
        console.print(v)


def _print_pose_stats(d: dict[str, Any]) -> None:
    t = _table(f"{escape(d['path'])} (pose h5, {d['keypoint_set']})", ["what", "value"], ("what",))
    t.show_header = False
    t.add_row("videos", _fmt(d["videos"]))
    t.add_row("frames", _fmt(d["frames"]))
    t.add_row("hours", _fmt(d["hours"]))
    t.add_row("frames/video (min med p95 max)", _dist(d["frames_per_video"]))
    t.add_row("seconds/video", _dist(d["seconds_per_video"]))
    t.add_row("fps", _dist(d["fps"]))
    t.add_row("frame sizes", ", ".join(f"{k} ({n})" for k, n in d["frame_sizes"].items()) or "-")
    t.add_row("dtype", ", ".join(d["dtypes"]) or "-")
    t.add_row("file size", human_bytes(d["bytes"]))
    if d["deep"]:
        t.add_row("non-finite values", _fmt(d["non_finite"]))
        t.add_row("x/y range (present points)", "-" if d["xy_range"] is None else
                  f"{d['xy_range'][0]:.3g} .. {d['xy_range'][1]:.3g}")
    console.print(t)
    if d["deep"]:
        r = _table("detection: frames where a part has any confidence > 0",
                   ["part", "frames", "rate", "per video: min med p95 max"], ("part",))
        for part, x in d["detection"].items():
            r.add_row(part, _fmt(x["frames"]), "-" if x["rate"] is None else f"{x['rate']:.1%}",
                      _dist({k: (None if v is None else round(v, 3)) for k, v in x["per_video"].items()}))
        console.print(r)
    else:
        console.print("[dim]detection rates per body part read the visibility arrays: add --deep[/]")


def _parse_size(size: str | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        w, h = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise fail(f"--size must look like 640x480, not {size!r}") from None
    if w < 8 or h < 8 or w > 8192 or h > 8192:
        raise fail(f"--size {size}: width and height must be between 8 and 8192")
    return w, h


def register(app: typer.Typer) -> None:
    @app.command()
    @user_errors
    def stats(
        path: Path = typer.Argument(..., help="A feature dataset directory (v1/v2) or a pose h5 file."),
        deep: bool = typer.Option(False, "--deep", help="Also read array data: value statistics, "
                                  "pose detection rates per body part."),
        split: Optional[str] = typer.Option(None, "--split", help="Only this split (feature datasets)."),
        plots: Optional[Path] = typer.Option(None, "--plots", help="Write PNG histograms into this directory."),
        json_out: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes for big feature datasets "
                                              "(default: cores)."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
    ) -> None:
        """Counts, length distributions, dims, shard sizes and pose detection rates.

        Exit 1 when some file could not be read (its numbers are missing; run validate)."""
        from sldata.stats import stats as compute, write_plots

        result = compute(path, deep=deep, split=split, progress=RichProgress(quiet or json_out), workers=workers)
        written = write_plots(result, plots) if plots is not None else []
        d = result.to_dict()
        if json_out:
            print_json({**d, "plots": [str(p) for p in written]})
        else:
            (_print_pose_stats if result.kind == "pose-h5" else _print_feature_stats)(d)
            if written:
                console.print(f"wrote {len(written)} plots to [bold]{escape(str(plots))}[/]: "
                              f"{', '.join(p.name for p in written)}", soft_wrap=True)
            for problem in result.problem_lines():
                console.print(f"[red]unreadable[/] {escape(problem)} (run sldata validate)", soft_wrap=True)
        if result.problems:
            raise typer.Exit(1)

    @app.command()
    @user_errors
    def render(
        pose: Path = typer.Argument(..., readable=False,  # our own "FILE: permission denied", one line
                                    help="A pose h5, a pose pkl, or a directory of pkls."),
        video_key: Optional[str] = typer.Argument(None, help="Video key (optional for a single pkl)."),
        out: Path = typer.Option(..., "-o", "--out", help="Output .png (one frame or a contact sheet), .gif or .mp4."),
        video: Optional[Path] = typer.Option(None, "--video", readable=False,
                                             help="Draw over this source video's frames."),
        frames: Optional[str] = typer.Option(None, "--frames", help="Frame range A:B (end exclusive) or one frame A."),
        size: Optional[str] = typer.Option(None, "--size", help="Canvas WxH (default: the file's width/height, "
                                           "the video's, or 512x512)."),
        sheet: int = typer.Option(12, "--sheet", help="PNG of several frames: at most this many tiles (1-100)."),
        fps: Optional[float] = typer.Option(None, "--fps", help="GIF/MP4 frames per second, 0.1-240 "
                                            "(default: the file's fps, else 25)."),
        face: bool = typer.Option(True, "--face/--no-face", help="Draw the face mesh contours when present."),
        min_conf: float = typer.Option(0.0, "--min-conf", help="Draw only points with confidence above this, 0-1 "
                                       "(0: every detected point; 0.5 hides MediaPipe's off-screen guesses)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Draw the skeleton (MediaPipe connections) on a blank canvas or over the source video."""
        from sldata.io import text_name
        from sldata.render import render as draw

        result = draw(pose, video_key, out, video=video, frames=frames, size=_parse_size(size),
                      sheet=sheet, face=face, min_conf=min_conf, fps=fps,
                      progress=RichProgress(quiet or json_out))
        if json_out:
            print_json(result.to_dict())
            return
        console.print(f"wrote [bold]{escape(text_name(result.out))}[/]: {result.frames} frame(s) of "
                      f"'{escape(text_name(result.key))}' "
                      f"({', '.join(str(i) for i in result.frame_indices[:6])}"
                      f"{', ...' if len(result.frame_indices) > 6 else ''}), {result.width}x{result.height}",
                      soft_wrap=True)

    @app.command("export-pose")
    @user_errors
    def export_pose(
        pose: Path = typer.Argument(..., readable=False, help="A pose h5."),
        to: str = typer.Option("pose", "--to", help="Target format: pose (pose-format .pose files)."),
        out: Path = typer.Option(..., "-o", "--out", help="Directory for one KEY.pose per video."),
        normalized: bool = typer.Option(False, "--normalized", help="Keep MediaPipe's normalised coordinates "
                                        "and declare a 1x1 canvas (lossless) instead of pixel coordinates."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Write one pose-format `.pose` file per video of a pose h5."""
        from sldata.interop import export_pose as run
        from sldata.io import text_name

        if to != "pose":
            raise fail(f"--to {to!r}: only 'pose' (pose-format) is supported")
        result = run(pose, out, normalized=normalized, progress=RichProgress(quiet or json_out))
        if json_out:
            print_json(result.to_dict())
            return
        console.print(f"wrote {len(result.written)} .pose files to [bold]{escape(text_name(out))}[/] "
                      f"({result.keypoint_set}, {'normalised' if normalized else 'pixel'} coordinates)", soft_wrap=True)

    @app.command("import-pose")
    @user_errors
    def import_pose(
        src: Path = typer.Argument(..., readable=False,
                                   help="A directory of pose-format .pose files (or one file)."),
        out: Path = typer.Option(..., "-o", "--out", help="The pose h5 to write."),
        keypoints: str = typer.Option("auto", "--keypoints", help="auto, openhands75 or holistic543 "
                                      "(auto: holistic543 when every file has the 468-point face)."),
        dtype: str = typer.Option("float32", "--dtype", help="float32 or float16."),
        quiet: bool = typer.Option(False, "--quiet", "-q"),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """Pack pose-format `.pose` files (MediaPipe holistic) into a pose h5."""
        from sldata.interop import import_pose as run
        from sldata.io import text_name

        result = run(src, out, keypoints=keypoints, dtype=dtype, progress=RichProgress(quiet or json_out))
        if json_out:
            print_json(result.to_dict())
        else:
            console.print(f"wrote [bold]{escape(text_name(out))}[/]: {result.count} videos ({result.keypoint_set})",
                          soft_wrap=True)
            for name, why in result.failed.items():
                console.print(f"[red]failed[/] {escape(name)}: {escape(why)}", highlight=False, soft_wrap=True)
        if result.failed:
            raise typer.Exit(1)
