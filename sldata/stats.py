"""`sldata stats`: what is in a feature dataset or a pose h5, as numbers and plots.

Shallow mode reads only what `validate` reads without `--deep`: annotation JSON,
HDF5 metadata (shapes, dtypes, attributes) and file sizes. `--deep` reads array
data once, sequentially: value statistics for features; for pose, the
visibility arrays (detection rates per body part) and the keypoints (coordinate
ranges, non-finite values). Pose detection rates need the visibility arrays
(a quarter of a pose file's data), which is why they belong to `--deep`: on a
corpus that read is gigabytes, not the metadata pass shallow mode promises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import UserError
from .findings import Finding, finding
from .progress import NullProgress, Progress
from .scan import ScanResult, ValueAcc


#: Frames of one pose video read at a time by --deep (543 points: about 35 MB).
POSE_BLOCK_FRAMES = 4096


@dataclass(frozen=True)
class Dist:
    """Summary of a distribution: the numbers a person checks before training."""

    n: int
    min: float | None
    median: float | None
    p95: float | None
    max: float | None
    mean: float | None
    total: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> "Dist":
        a = np.asarray(list(values), dtype=np.float64)
        if a.size == 0:
            return cls(0, None, None, None, None, None, None)
        return cls(int(a.size), _num(a.min()), _num(np.median(a)), _num(np.percentile(a, 95)),
                   _num(a.max()), _num(a.mean()), _num(a.sum()))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "min": self.min, "median": self.median, "p95": self.p95,
                "max": self.max, "mean": self.mean, "total": self.total}


def _num(x: Any) -> float | int:
    """Plain Python number; integers stay integers so JSON reads naturally."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else round(x, 6)


@dataclass
class Stats:
    """The result of `stats()`: a JSON-ready summary plus raw samples for plots."""

    path: Path
    kind: str  # "v1" | "v2" | "pose-h5"
    deep: bool
    summary: dict[str, Any]
    samples: dict[str, list[float]] = field(default_factory=dict)  # plot name -> values
    #: what could not be read (h5-unreadable findings: a file, video or clip; CLI exit 1)
    problems: list[Finding] = field(default_factory=list)

    def problem_lines(self) -> list[str]:
        """The documented --json `problems`: "FILE video 'V' clip 'C': why", FILE relative to the input."""
        out = []
        for f in self.problems:
            place = Path(f.file) if f.file is not None else self.path
            if place == self.path:  # a pose h5: the video key names the place
                head = f.video or str(self.path)
            else:
                head = str(place.relative_to(self.path)) if place.is_relative_to(self.path) else str(place)
                head += (f" video {f.video!r}" if f.video is not None else "") + \
                    (f" clip {f.clip!r}" if f.clip is not None else "")
            out.append(f"{head}: {f.message}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "deep": self.deep, **self.summary,
                "problems": self.problem_lines()}


def stats(path: str | Path, *, deep: bool = False, split: str | None = None,
          progress: Progress | None = None, workers: int | None = None) -> Stats:
    """Statistics of a v1/v2 feature dataset directory or a pose h5 file."""
    path = Path(path)
    progress = progress or NullProgress()
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if path.is_dir():
        from .features import detect_layout

        if detect_layout(path) is None:
            raise UserError(f"{path}: not a feature dataset (no annotation.SPLIT.json) "
                            "and not a pose h5")
        return feature_stats(path, deep=deep, split=split, progress=progress, workers=workers)
    if split is not None:
        raise UserError("--split applies to feature datasets; a pose h5 holds one split")
    return pose_stats(path, deep=deep, progress=progress)


# --- feature datasets ----------------------------------------------------------------

def _words(text: Any) -> int | None:
    return len(text.split()) if isinstance(text, str) else None


def _clip_seconds(entry: Any) -> float | None:
    if not isinstance(entry, dict):
        return None
    start, end = entry.get("start"), entry.get("end")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return float(end) - float(start)
    return None


def feature_stats(root: Path, *, deep: bool = False, split: str | None = None,
                  progress: Progress | None = None, workers: int | None = None) -> Stats:
    """Per split: videos, clips, words; per rep: frames per clip, dims, dtypes, files.

    Files are scanned by validate's scan (`sldata.scan`: low-level h5py, one task
    per file or slice of a big file, `sldata.pool` when the data is large), so
    shallow stats cost what shallow validate costs; a file, video or clip the scan
    cannot read is an `h5-unreadable` finding, never a "missing" one.
    """
    from .features import FeatureDataset, clip_entries, v1_path
    from .pool import default_workers
    from .scan import merge, plan_tasks, run_tasks, scan_feature_file

    progress = progress or NullProgress()
    ds = FeatureDataset(root)
    lay = ds.layout
    splits = [split] if split else list(ds.splits)
    out: dict[str, Any] = {"splits": {}, "reps": list(ds.reps)}
    samples: dict[str, list[float]] = {}
    problems: list[Finding] = []
    try:
        for s in splits:
            view = ds.split(s)
            clips_per_video: list[int] = []
            words: list[int] = []
            seconds: list[float] = []
            for v in view.videos:
                entry = view.annotation[v]
                entries = clip_entries(entry) if isinstance(entry, dict) else {}
                clips_per_video.append(len(view.clips(v)) if isinstance(entry, dict) else 0)
                for c in entries.values():
                    if (w := _words(c.get("translation") if isinstance(c, dict) else None)) is not None:
                        words.append(w)
                    if (sec := _clip_seconds(c)) is not None:
                        seconds.append(sec)
            rep_files: dict[str, list[Path]] = {}
            for rep in ds.reps:
                if lay.kind == "v1":
                    p = v1_path(lay.root, rep, s)
                    rep_files[rep] = [p] if p.exists() else []
                else:
                    rep_files[rep] = list(lay.shards.get((rep, s), {}).values())
            every = [str(p) for files in rep_files.values() for p in files]
            tasks, nworkers = plan_tasks(every, workers or default_workers(), False)
            tasks = [(*t, True, deep) for t in tasks]  # facts (dtypes); summarise the values when deep
            pending = run_tasks(scan_feature_file, tasks, nworkers, on_done=progress.advance)
            progress.start(f"stats {s}", total=len(tasks), unit="files")  # after the workers' fork
            facts = merge(pending)
            progress.finish()
            for f in facts.values():
                if f.error:
                    problems.append(finding("h5-unreadable", f.error, f.path))
                problems.extend(finding(code, why, f.path, video=v, clip=c) for code, v, c, why in f.problems
                                if code == "h5-unreadable")
            reps: dict[str, Any] = {}
            for rep in ds.reps:
                reps[rep] = _rep_stats(view, rep_files[rep], facts, deep)
                samples[f"frames_per_clip.{s}.{rep}"] = reps[rep].pop("_frames")
            out["splits"][s] = {
                "videos": len(view.videos),
                "clips": int(sum(clips_per_video)),
                "clips_per_video": Dist.of(clips_per_video).to_dict(),
                "translation_words": Dist.of(words).to_dict(),
                "clip_seconds": Dist.of(seconds).to_dict(),
                "reps": reps,
            }
            samples[f"clips_per_video.{s}"] = [float(x) for x in clips_per_video]
            samples[f"translation_words.{s}"] = [float(x) for x in words]
            samples[f"clip_seconds.{s}"] = seconds
    finally:
        ds.close()
    return Stats(root, ds.kind, deep, out, samples, problems)


def _rep_stats(view: Any, files: list[Path], facts: dict[str, ScanResult], deep: bool) -> dict[str, Any]:
    """Frames per clip in annotation order; dims and dtypes; files with their videos and bytes."""
    held: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    bad_videos: set[str] = set()
    bad_clips: set[tuple[str, str]] = set()
    for p in files:
        f = facts.get(str(p))
        if f is not None:
            for video, clips in f.entries.items():
                dtypes_of = f.dtypes.get(video, {})
                held.setdefault(video, {}).update((c, (shape, dtypes_of[c])) for c, shape in clips.items())
            for code, video, clip, _ in f.problems:
                if code == "h5-unreadable" and video is not None:
                    (bad_videos.add(video) if clip is None else bad_clips.add((video, clip)))
    frames: list[float] = []
    dims: dict[int, int] = {}
    dtypes: dict[str, int] = {}
    missing_videos = missing_clips = 0
    for v in view.videos:
        if not isinstance(view.annotation[v], dict):  # malformed entry: validate reports it
            continue
        have = held.get(v)
        if have is None:
            missing_videos += v not in bad_videos
            continue
        for c in view.clips(v):
            if c not in have:
                missing_clips += (v, c) not in bad_clips
                continue
            shape, dtype = have[c]
            frames.append(float(shape[0]) if shape else 0.0)
            if len(shape) == 2:
                dims[int(shape[1])] = dims.get(int(shape[1]), 0) + 1
            dtypes[dtype] = dtypes.get(dtype, 0) + 1
    out: dict[str, Any] = {
        "clips": len(frames),
        "frames": int(sum(frames)),
        "frames_per_clip": Dist.of(frames).to_dict(),
        "dims": {str(k): n for k, n in sorted(dims.items())},
        "dtypes": dtypes,
        "missing_videos": missing_videos,
        "missing_clips": missing_clips,
        "unreadable_videos": len(bad_videos),
        "unreadable_clips": len(bad_clips),
        "files": [_file_entry(view, p, facts.get(str(p))) for p in files],
        "_frames": frames,
    }
    if deep:
        acc = ValueAcc()
        for p in files:
            f = facts.get(str(p))
            if f is not None and f.summary is not None:
                acc.merge(f.summary)
        out["values"] = {k: None if v is None else _num(v) for k, v in acc.result().items()}
    return out


def _file_entry(view: Any, p: Path, f: ScanResult | None) -> dict[str, Any]:
    from .features import SHARD_RE

    m = SHARD_RE.match(p.name)
    name = p.name if view.dataset.layout.kind == "v1" else f"{p.parent.name}/{p.name}"
    return {"file": name, "shard": int(m.group(3)) if m else None,
            "videos": None if f is None or f.error else len(f.entries), "bytes": p.stat().st_size,
            **({"error": f.error} if f is not None and f.error else {})}


# --- pose h5 -------------------------------------------------------------------------

def pose_stats(path: Path, *, deep: bool = False, progress: Progress | None = None) -> Stats:
    """Videos, frames, fps, durations, frame sizes; with `deep`, detection rates per part."""
    from .pose import PoseH5

    progress = progress or NullProgress()
    try:
        pose = PoseH5(path)
    except UserError as exc:
        raise UserError(f"{exc} (stats reads feature dataset directories and pose h5 files)") from None
    try:
        kset = pose.keypoint_set
        keys = pose.keys()
        frames: list[float] = []
        fps: list[float] = []
        seconds: list[float] = []
        sizes: dict[str, int] = {}
        dtypes: dict[str, int] = {}
        parts = dict(kset.parts) if kset else {}
        present = {p: 0 for p in parts}
        present["any_hand"] = 0
        per_video_rates: dict[str, list[float]] = {p: [] for p in present}
        total_frames_read = 0
        nonfinite = 0
        xy_lo, xy_hi = math.inf, -math.inf
        problems: list[Finding] = []
        progress.start("stats pose", total=len(keys), unit="videos")
        for key in keys:
            try:
                shape = pose.shape(key)
                f = int(shape[0]) if shape else 0
                frames.append(float(f))
                dtype = pose.dtype(key)
                dtypes[dtype] = dtypes.get(dtype, 0) + 1
                a = pose.video_attrs(key)
                if isinstance(a.get("fps"), (int, float)) and a["fps"] > 0:
                    fps.append(float(a["fps"]))
                    seconds.append(f / float(a["fps"]))
                if a.get("width") and a.get("height"):
                    size = f"{int(a['width'])}x{int(a['height'])}"
                    sizes[size] = sizes.get(size, 0) + 1
                if deep and parts and f:
                    counts = {p: 0 for p in present}
                    for lo_f in range(0, f, POSE_BLOCK_FRAMES):  # constant memory on hour-long videos
                        hi_f = min(f, lo_f + POSE_BLOCK_FRAMES)
                        vis = pose.visibility(key, lo_f, hi_f)
                        on = {p: (vis[:, lo:hi] > 0).any(axis=1) for p, (lo, hi) in parts.items()}
                        hands = [on[p] for p in ("left_hand", "right_hand") if p in on]
                        on["any_hand"] = np.logical_or.reduce(hands) if hands else np.zeros(len(vis), bool)
                        for p, mask in on.items():
                            counts[p] += int(np.count_nonzero(mask))
                        kp = pose.keypoints(key, lo_f, hi_f)
                        finite = np.isfinite(kp)
                        nonfinite += int(kp.size - np.count_nonzero(finite))
                        shown = (vis > 0) & finite[..., :2].all(axis=-1)
                        xy = kp[..., :2][shown]
                        if xy.size:
                            xy_lo, xy_hi = min(xy_lo, float(xy.min())), max(xy_hi, float(xy.max()))
                    for p, n in counts.items():
                        present[p] += n
                        per_video_rates[p].append(n / f)
                    total_frames_read += f
            except (OSError, KeyError, ValueError, IndexError, UserError) as exc:  # one broken video: report, go on
                problems.append(finding("h5-unreadable", str(exc), path, video=key))
            progress.advance(1)
        progress.finish()
        summary: dict[str, Any] = {
            "keypoint_set": kset.name if kset else None,
            "num_keypoints": kset.num_keypoints if kset else None,
            "videos": len(keys),
            "frames": int(sum(frames)),
            "frames_per_video": Dist.of(frames).to_dict(),
            "fps": Dist.of(fps).to_dict(),
            "seconds_per_video": Dist.of(seconds).to_dict(),
            "hours": _num(sum(seconds) / 3600) if seconds else None,
            "frame_sizes": sizes,
            "dtypes": dtypes,
            "bytes": path.stat().st_size,
            "attrs": {k: v for k, v in pose.attrs.items() if isinstance(v, (str, int, float, bool))},
        }
        samples: dict[str, list[float]] = {"frames_per_video": frames, "seconds_per_video": seconds}
        if deep:
            summary["detection"] = {
                p: {"frames": n, "rate": _num(n / total_frames_read) if total_frames_read else None,
                    "per_video": Dist.of(per_video_rates[p]).to_dict()}
                for p, n in present.items()
            }
            summary["non_finite"] = nonfinite
            summary["xy_range"] = None if xy_lo == math.inf else [_num(xy_lo), _num(xy_hi)]
            for p, rates in per_video_rates.items():
                samples[f"detection.{p}"] = rates
    finally:
        pose.close()
    return Stats(path, "pose-h5", deep, summary, samples, problems)


# --- plots ---------------------------------------------------------------------------

_TITLES = {
    "frames_per_clip": "frames per clip",
    "clips_per_video": "clips per video",
    "translation_words": "translation length (words)",
    "clip_seconds": "clip duration (s)",
    "frames_per_video": "frames per video",
    "seconds_per_video": "video duration (s)",
}


def write_plots(result: Stats, out_dir: str | Path) -> list[Path]:
    """One PNG per quantity, written atomically: a panel per split, a line per rep.

    Reps with identical values (e.g. dino, mae and pose frames per clip) share one
    line, labelled `dino=mae=pose`, instead of hiding each other.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import atomic_path

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--plots {out_dir}: exists and is not a directory")
    groups: dict[str, dict[str, dict[str, list[float]]]] = {}  # base -> panel -> label -> values
    for name, values in result.samples.items():
        base, _, rest = name.partition(".")
        panel, _, label = rest.partition(".") if base != "detection" else ("", "", rest)
        if len(values):
            groups.setdefault(base, {}).setdefault(panel, {})[label] = values
    written: list[Path] = []
    for base, panels in groups.items():
        title = _TITLES.get(base, base)
        if base == "detection":
            fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
            series = panels[""]
            ax.bar(list(series), [float(np.mean(v)) for v in series.values()], color="#4c72b0")
            ax.set_ylim(0, 1)
            ax.set_ylabel("fraction of frames\n(mean over videos)")
            ax.set_title(f"pose detection rate per part — {result.path.name}")
        else:
            every = [v for p in panels.values() for v in p.values()]
            lo, hi = min(min(v) for v in every), max(max(v) for v in every)
            bins = _bins(lo, hi, integer=base not in ("clip_seconds", "seconds_per_video"))
            fig, axes = plt.subplots(len(panels), 1, figsize=(6.4, 0.9 + 2.1 * len(panels)), dpi=100,
                                     sharex=True, squeeze=False)
            for ax, (panel, series) in zip(axes[:, 0], panels.items()):
                merged: list[tuple[str, list[float]]] = []
                for label, values in series.items():
                    same = next((i for i, (_, v) in enumerate(merged) if v == values), None)
                    if same is None:
                        merged.append((label, values))
                    else:
                        merged[same] = (f"{merged[same][0]}={label}", values)
                for label, values in merged:
                    if len(merged) == 1:
                        ax.hist(values, bins=bins, color="#4c72b0")
                    else:
                        ax.hist(values, bins=bins, histtype="step", linewidth=1.6, label=label)
                ax.set_ylabel(f"{panel}: count" if panel else "count")
                if len(merged) > 1:
                    ax.legend(fontsize="small")
            axes[-1, 0].set_xlabel(title)
            axes[0, 0].set_title(f"{title} — {result.path.name}")
        fig.tight_layout()
        target = out_dir / f"{base}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(target)
    return written


def _bins(lo: float, hi: float, integer: bool) -> Any:
    if integer and hi - lo <= 60:
        return np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.5, 1.0)
    return 30 if hi > lo else 1
