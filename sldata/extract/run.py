"""extract-pose: resume, run Holistic per video, record failures.

Every video becomes `OUT/<stem>.pkl` (SPEC §3), written atomically with a `meta`
entry holding the options hash; a rerun skips pkls that are complete and were
made with the same options, and redoes everything else. Which videos a run does
(discovery, `--list`, the job-array split) is `inputs`; landmarks stream through
`spool` so a long video costs no more memory than a short one. Videos that
cannot be decoded, and videos whose worker died twice, are recorded in
`OUT/failures*.jsonl` and the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import UserError
from ..findings import Finding, finding
from ..io import dumps_json, remove_stale_temporaries, text_name, write_bytes_atomic
from ..pkls import pkl_path
from ..pose import keypoint_set
from ..progress import NullProgress, Progress
from .executors import WorkerLost
from .holistic import HolisticModel, HolisticOptions, check_model_available, frame_arrays, mediapipe_version
from .inputs import (check_shard_args, check_stems, discover_videos, read_video_list,
                     relative_name, shard_videos)
from .spool import FrameSpool, spool_names, write_spooled_pkl
#: Containers whose frame count comes from an index (exact); mkv/webm counts are
#: estimated from the duration, so a small shortfall there is not an error.
INDEXED_EXTS = (".mp4", ".mov", ".avi")
#: Bump when the pkl content changes for the same options (invalidates old outputs).
PKL_SCHEMA = 1


@dataclass(frozen=True)
class ExtractOptions:
    keypoints: str = "openhands75"
    holistic: HolisticOptions = HolisticOptions()

    def as_dict(self) -> dict[str, Any]:
        return {"keypoints": self.keypoints, "pkl_schema": PKL_SCHEMA, **self.holistic.as_dict()}

    def hash(self) -> str:
        """Stable across runs and machines: the canonical JSON of the options."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    video: str   # absolute path
    out: str     # the pkl to write
    source: str  # video path relative to the videos root (posix)


@dataclass
class VideoResult:
    source: str
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    reason: str | None = None


@dataclass
class ExtractReport:
    videos_root: str
    out_dir: str
    options: dict[str, Any]
    options_hash: str
    total: int = 0          # videos assigned to this run (after the shard split)
    extracted: int = 0
    skipped: int = 0        # already complete with the same options
    frames: int = 0
    seconds: float = 0.0
    failures: list[Finding] = field(default_factory=list)  # video = its path relative to VIDEOS
    failures_file: str | None = None
    shard: tuple[int, int] | None = None  # (index, count)
    pkls: list[str] = field(default_factory=list)  # complete outputs of this run, sorted
    notices: list[str] = field(default_factory=list)  # one-line notes (e.g. workers clamped to the CPUs)
    h5: dict[str, Any] | None = None

    @property
    def failed(self) -> list[dict[str, str]]:
        """The documented shape of a failure (--json `failed`, a line of failures*.jsonl)."""
        return [{"video": f.video or "", "reason": f.message} for f in self.failures]

    @property
    def ok(self) -> bool:
        return not self.failures and (self.h5 is None or self.h5.get("ok", True))

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {("failed" if k == "failures" else k): v for k, v in asdict(self).items() if k != "pkls"}
        d["failed"] = self.failed
        d.update(ok=self.ok, frames_per_second=round(self.frames_per_second, 2))
        return d


# --- resume -------------------------------------------------------------------------------

def is_complete(pkl: Path, options_hash: str) -> bool:
    """A pkl this toolkit wrote with the same options, checked without loading its arrays.

    Outputs appear atomically, so an existing pkl is whole; what is left to check is
    that it was made with these options. `save_pkl` pickles `meta` (with the options
    hash) after the arrays, so it sits in the last bytes: reading those keeps a
    resume over thousands of long videos from re-reading every array. The hash
    covers the keypoint set.
    """
    try:
        with open(pkl, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _TAIL))
            tail = fh.read()
    except OSError:
        return False
    # the key, at most a memo opcode, then the 16-character digest as a short string
    pattern = rb"options_hash(?:\x94|q.|r....)?\x8c\x10" + re.escape(options_hash.encode("ascii"))
    return tail.endswith(b".") and re.search(pattern, tail, re.DOTALL) is not None


_TAIL = 64 * 1024  # far more than a pickled `meta` needs


def _remove_stale_tmp(out_dir: Path, videos: list[Path]) -> None:
    """What dead runs (or workers lost in this one) left for *our* videos: their pkls' and spools'
    temporaries, in one scan of the folder (`sldata.io.remove_stale_temporaries`)."""
    pkls = [pkl_path(out_dir, v.stem) for v in videos]
    targets = [t for pkl in pkls for t in (pkl, *spool_names(pkl))]
    if targets:
        remove_stale_temporaries(*targets)


# --- one video (runs in a worker) ---------------------------------------------------------

_MODEL: HolisticModel | None = None


def init_worker(options: ExtractOptions) -> None:
    """Build this worker's Holistic graph once; it is reused (and reset) for every video."""
    global _MODEL
    # FFmpeg's per-packet complaints would bury the progress bar; decode failures are
    # detected and reported per video instead. Set the variable yourself to see them.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if _MODEL is None or _MODEL.options != options.holistic:
        _MODEL = HolisticModel(options.holistic)


def extract_video(job: Job, options: ExtractOptions) -> VideoResult:
    """Decode one video frame by frame, run Holistic, write its pkl; failures become results."""
    global _MODEL
    t0 = time.perf_counter()
    try:
        frames, reason = _extract(job, options)
    except Exception as exc:  # MediaPipe or OpenCV raised mid-video: record it, keep the worker usable
        if _MODEL is not None:  # the graph may be in a bad state: the next video builds a fresh one
            try:
                _MODEL.close()
            except Exception:
                pass
            _MODEL = None
        frames, reason = 0, f"{type(exc).__name__}: {exc}"
    return VideoResult(job.source, reason is None, frames, time.perf_counter() - t0, reason)


@contextlib.contextmanager
def open_video(path: Path) -> Iterator[Any]:
    """`cv2.VideoCapture` of any path, closed on exit.

    OpenCV's FFmpeg backend crashes (SIGSEGV) on a path that is not valid UTF-8,
    and mishandles some non-ASCII ones: such a video is opened through an ASCII
    symlink in a private temporary folder instead.
    """
    import cv2

    name = str(path)
    link_dir = None
    if not name.isascii():
        link_dir = tempfile.mkdtemp(prefix="sldata-video-")
        suffix = path.suffix.lower() if path.suffix.isascii() else ""
        name = os.path.join(link_dir, "video" + suffix)
        os.symlink(os.path.abspath(path), name)
    cap = cv2.VideoCapture(name)
    try:
        yield cap
    finally:
        cap.release()
        if link_dir is not None:
            shutil.rmtree(link_dir, ignore_errors=True)


def _extract(job: Job, options: ExtractOptions) -> tuple[int, str | None]:
    import cv2

    path = Path(job.video)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, "no such file (listed, but not found)"
    except OSError as exc:
        return 0, f"cannot read file: {exc.strerror or exc}"
    if size == 0:
        return 0, "empty file (0 bytes)"
    kset = keypoint_set(options.keypoints)
    with open_video(path) as cap, FrameSpool(job.out, kset.num_keypoints) as spool:
        if not cap.isOpened():
            return 0, "cannot open: not a readable video (corrupt, truncated or unsupported container)"
        fps = cap.get(cv2.CAP_PROP_FPS)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        expected = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if _MODEL is None:
            init_worker(options)
        assert _MODEL is not None
        _MODEL.new_video()
        while True:  # landmarks go to the spool block by block: memory does not grow with the video
            ok, frame = cap.read()
            if not ok:
                break
            spool.append(*frame_arrays(_MODEL.process_bgr(frame), kset))
        n = spool.frames
        if n == 0:
            return 0, "no decodable frames"
        slack = 0 if path.suffix.lower() in INDEXED_EXTS else max(2, expected // 50)
        if expected > 0 and n < expected - slack:
            return n, f"decoding stopped at frame {n} of {expected} (corrupt or truncated stream)"
        meta = {"options_hash": options.hash(), "options": options.as_dict(), "keypoint_set": options.keypoints,
                "sldata_version": _version(), "mediapipe_version": mediapipe_version(), "source": job.source}
        write_spooled_pkl(job.out, spool, fps=float(fps) if fps and fps > 0 else None, width=width or None,
                          height=height or None, extra={"meta": meta})
    return n, None


def _version() -> str:
    from .. import __version__

    return __version__


# --- the run -------------------------------------------------------------------------------

def failures_name(num_shards: int, shard_index: int) -> str:
    """One failures file per shard: job-array tasks share OUT and must not overwrite each other."""
    return "failures.jsonl" if num_shards == 1 else f"failures.shard-{shard_index}-of-{num_shards}.jsonl"


def lost_failure(source: str, exc: BaseException) -> Finding:
    """The failure of a video whose worker did not return a result (died twice, or raised: a bug)."""
    if isinstance(exc, WorkerLost):
        return finding("worker-lost", str(exc), video=source)
    return finding("worker-lost", f"worker error ({type(exc).__name__}: {exc}); rerun to retry", video=source)


def run_extraction(videos: str | Path, out_dir: str | Path = "poses", *,
                   options: ExtractOptions | None = None, workers: int | None = None,
                   num_shards: int = 1, shard_index: int = 0, executor: str = "local",
                   video_list: str | Path | None = None, in_process: bool = False,
                   h5: str | Path | None = None, h5_dtype: str = "float32",
                   progress: Progress | None = None, notify: Callable[[str], None] | None = None) -> ExtractReport:
    """Extract pose from every video under `videos` (or listed in `video_list`) into `out_dir`.

    in_process: with one local worker, run it in this process (no crash isolation: a
    native crash in one video ends the caller; for tests and notebooks).
    notify: called with one-line notices as they arise (e.g. workers clamped to the CPUs).
    """
    from .executors import make_executor

    options = options or ExtractOptions()
    keypoint_set(options.keypoints)  # a bad name fails before any work
    check_model_available(options.holistic.model_complexity)
    check_shard_args(num_shards, shard_index)
    progress = progress or NullProgress()
    root, out = Path(videos), Path(out_dir)
    all_videos = read_video_list(video_list, root) if video_list is not None else discover_videos(root)
    check_stems(all_videos, root)
    if h5 is not None and any(Path(h5).resolve() == v.resolve() for v in all_videos):
        raise UserError(f"--h5 {text_name(str(h5))}: is one of the input videos; give the h5 another name")
    mine = shard_videos(all_videos, num_shards, shard_index, root=root)
    pool = make_executor(executor, workers, init_worker, (options,), in_process=in_process)  # bad options first
    if out.exists() and not out.is_dir():
        raise UserError(f"{text_name(str(out))}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    if h5 is not None and Path(h5).is_dir():
        raise UserError(f"--h5 {text_name(str(h5))}: is a directory, expected a file name")

    digest = options.hash()
    report = ExtractReport(text_name(str(root)), text_name(str(out)), options.as_dict(), digest, total=len(mine),
                           shard=(shard_index, num_shards) if num_shards > 1 else None)
    _remove_stale_tmp(out, mine)
    jobs: list[Job] = []
    done: list[str] = []
    for v in mine:
        pkl = pkl_path(out, v.stem)
        if is_complete(pkl, digest):
            report.skipped += 1
            done.append(str(pkl))
        else:
            jobs.append(Job(os.path.abspath(v), str(pkl), text_name(relative_name(v, root))))

    t0 = time.perf_counter()
    results = pool.imap_unordered(partial(extract_video, options=options), jobs)  # workers start before the bar
    for notice in pool.notices:
        report.notices.append(notice)
        if notify is not None:
            notify(notice)
    progress.start("extract-pose", total=len(jobs), unit="videos")
    try:
        with contextlib.closing(results):  # an error here stops the workers now, not at exit
            for job, res in results:
                if isinstance(res, BaseException):
                    report.failures.append(lost_failure(job.source, res))
                elif res.ok:
                    report.extracted += 1
                    report.frames += res.frames
                    done.append(job.out)
                else:
                    report.failures.append(finding("extract-failed", res.reason or "unknown", video=res.source))
                rate = report.frames / max(time.perf_counter() - t0, 1e-9)
                progress.advance(1, frames=f"{rate:.1f}/s")
    finally:
        progress.finish()
    report.seconds = time.perf_counter() - t0
    _remove_stale_tmp(out, mine)  # what workers that died mid-video left
    report.failures.sort(key=lambda f: f.video or "")
    report.pkls = sorted(done)

    fail_path = out / failures_name(num_shards, shard_index)
    write_bytes_atomic(fail_path, b"".join(dumps_json(f, indent=False) + b"\n" for f in report.failed))
    report.failures_file = text_name(str(fail_path))

    if h5 is not None and report.pkls:
        from ..pack import pack_pkls

        report.h5 = pack_pkls([Path(p) for p in report.pkls], h5, root=out, dtype=h5_dtype,
                              progress=progress).to_dict()
    return report
