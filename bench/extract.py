"""Benchmark `sldata extract-pose` against a bare Holistic loop and pose-format's `videos_to_poses`.

All three run as fresh processes over the same corpus (copies of the bundled clip
plus longer generated clips), timed wall-clock from launch to exit, so start-up
(imports, graph builds, worker spawn) counts for everyone:

* bare:  decode (OpenCV) + Holistic.process per frame, nothing written; with N
         workers, N processes over a static split balanced by frame count.
* ours:  `sldata extract-pose CORPUS -o OUT --workers N` (openhands75, and
         holistic543 — the same content pose-format writes).
* peer:  `videos_to_poses --format mediapipe --directory COPY --num-workers N`
         (pose-format, installed in its own venv, not a project dependency).

    python3 -m venv /tmp/pfenv && /tmp/pfenv/bin/pip install -c constraints.txt pose-format mediapipe==0.10.21
    .venv/bin/python bench/extract.py --peer /tmp/pfenv/bin/videos_to_poses

`--memory` instead measures peak memory against video length: the sample, and the
sample looped `--loops` times (same content, same fps), each through
`sldata extract-pose VIDEO --workers 1` as a fresh process tree; the peak RSS is
the largest of the command and its worker (RUSAGE_CHILDREN of a wrapper process):

    .venv/bin/python bench/extract.py --memory --loops 10

Prints frames/s (wall-clock) and CPU ms per frame (user + sys of every process,
which shared-machine noise distorts less) per run, and the ratios: overhead vs
bare at equal workers, 2 workers vs 1, ours vs pose-format at equal workers.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "astronaut.mp4"
BIN = Path(sys.executable).parent


def read_frames(path: Path) -> list:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def make_corpus(root: Path, copies: int, longs: int, long_frames: int) -> dict[str, int]:
    """copies x the 30-frame sample + `longs` clips of `long_frames` (the sample played back and forth)."""
    import cv2

    root.mkdir(parents=True)
    frames = read_frames(SAMPLE)
    counts = {}
    for i in range(copies):
        shutil.copy(SAMPLE, root / f"short_{i}.mp4")
        counts[f"short_{i}.mp4"] = len(frames)
    cycle = frames + frames[-2:0:-1]
    for i in range(longs):
        name = f"long_{i}.mp4"
        w = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (288, 288))
        for k in range(long_frames):
            w.write(cycle[(k + 7 * i) % len(cycle)])
        w.release()
        counts[name] = long_frames
    return counts


def looped(dst: Path, loops: int) -> int:
    """The sample played `loops` times in a row, re-encoded at its own fps and size; returns frames."""
    import cv2

    frames = read_frames(SAMPLE)
    cap = cv2.VideoCapture(str(SAMPLE))
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(loops):
        for f in frames:
            writer.write(f)
    writer.release()
    return loops * len(frames)


def peak_rss_of(cmd: list[str]) -> None:
    """Run `cmd`; print its JSON report and the peak RSS (KiB) of it and its workers (a wrapper's children)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr}")
    print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                      "report": json.loads(proc.stdout)}))


def memory(loops: int, kinds: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="sldata-bench-extract-mem-") as tmp:
        tmp_path = Path(tmp)
        videos = {"short": (tmp_path / "short" / "short.mp4"), f"{loops}x": (tmp_path / "long" / "long.mp4")}
        for v in videos.values():
            v.parent.mkdir()
        counts = {"short": looped(videos["short"], 1), f"{loops}x": looped(videos[f"{loops}x"], loops)}
        print(f"peak RSS vs video length: the sample ({counts['short']} frames) and the sample looped {loops}x "
              f"({counts[f'{loops}x']} frames), --workers 1, one fresh process tree each")
        for kset in kinds:
            rss: dict[str, float] = {}
            secs: dict[str, float] = {}
            for name, video in videos.items():
                cmd = [str(BIN / "sldata"), "extract-pose", str(video), "-o", str(tmp_path / f"out_{kset}_{name}"),
                       "--workers", "1", "--keypoints", kset, "--quiet", "--json"]
                wrapped = subprocess.run([sys.executable, __file__, "--rss-of", *cmd], capture_output=True, text=True,
                                         check=True)
                got = json.loads(wrapped.stdout)
                rss[name] = got["maxrss_kib"] / 1024
                secs[name] = got["report"]["seconds"]
                print(f"{kset:12s} {name:6s} {counts[name]:5d} frames  peak RSS {rss[name]:7.1f} MiB  "
                      f"{secs[name]:6.2f} s ({got['report']['frames_per_second']:5.1f} frames/s incl. graph start)",
                      flush=True)
            long = f"{loops}x"
            steady = (counts[long] - counts["short"]) / max(secs[long] - secs["short"], 1e-9)
            print(f"{kset:12s} peak RSS {long} - short = {rss[long] - rss['short']:+.1f} MiB; frames/s of the "
                  f"extra {counts[long] - counts['short']} frames: {steady:.1f} (start-up excluded)")


def bare_worker(videos: list[str]) -> None:
    """The baseline: one Holistic, decode + process every frame, nothing written."""
    import cv2
    import mediapipe as mp

    holistic = mp.solutions.holistic.Holistic(static_image_mode=False, model_complexity=1)
    for v in videos:
        cap = cv2.VideoCapture(v)
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            holistic.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        cap.release()
    holistic.close()


def split(counts: dict[str, int], corpus: Path, n: int) -> list[list[str]]:
    """Longest first onto the least loaded worker: the best static split a bare script can do."""
    loads = [0] * n
    parts: list[list[str]] = [[] for _ in range(n)]
    for name, c in sorted(counts.items(), key=lambda kv: -kv[1]):
        i = loads.index(min(loads))
        parts[i].append(str(corpus / name))
        loads[i] += c
    return parts


CPU: dict[tuple[str, int], float] = {}  # CPU seconds (user + sys, all processes) of the best run


def timed(cmds: list[list[str]]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the commands and all their children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if any(codes):
        raise SystemExit(f"{cmds[0][:3]} failed with exit codes {codes}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(fps: dict, key: tuple[str, int], frames: int, cmds: list[list[str]]) -> None:
    """Keep the best (fastest wall-clock) run of `key`, with its CPU time."""
    wall, cpu = timed(cmds)
    if frames / wall > fps.get(key, 0.0):
        fps[key] = frames / wall
        CPU[key] = cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="copies of the 30-frame sample")
    ap.add_argument("--longs", type=int, default=2, help="longer generated clips")
    ap.add_argument("--long-frames", type=int, default=180, help="frames per longer clip")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare")
    ap.add_argument("--repeat", type=int, default=2, help="runs of bare and ours (openhands75), best kept")
    ap.add_argument("--peer", default="/tmp/pfenv/bin/videos_to_poses",
                    help="pose-format's videos_to_poses (skipped when absent)")
    ap.add_argument("--memory", action="store_true", help="peak RSS of a short vs a --loops times longer video")
    ap.add_argument("--loops", type=int, default=10, help="with --memory: how many times the long video loops")
    ap.add_argument("--kinds", default="openhands75,holistic543", help="with --memory: keypoint sets")
    ap.add_argument("--bare-worker", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--rss-of", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_of:
        peak_rss_of(args.rss_of)
        return
    if args.memory:
        memory(args.loops, args.kinds.split(","))
        return
    if args.bare_worker is not None:
        bare_worker(args.bare_worker)
        return

    peer = Path(args.peer) if args.peer and Path(args.peer).exists() else None
    with tempfile.TemporaryDirectory(prefix="sldata-bench-extract-") as tmp:
        tmp_path = Path(tmp)
        corpus = tmp_path / "videos"
        counts = make_corpus(corpus, args.copies, args.longs, args.long_frames)
        frames = sum(counts.values())
        print(f"corpus: {len(counts)} videos, {frames} frames (288x288, 12 fps); wall-clock incl. start-up")
        fps: dict[tuple[str, int], float] = {}
        for n in (int(w) for w in args.workers.split(",")):
            bare = [[sys.executable, __file__, "--bare-worker", *part] for part in split(counts, corpus, n)]

            def ours(kset: str, rep: int) -> list[list[str]]:
                return [[str(BIN / "sldata"), "extract-pose", str(corpus), "-o", str(tmp_path / f"out_{kset}_{n}_{rep}"),
                         "--workers", str(n), "--keypoints", kset, "--quiet"]]

            # bare and ours alternate, best of --repeat each: the box is shared and noisy
            for rep in range(args.repeat):
                measure(fps, ("bare", n), frames, bare)
                measure(fps, ("openhands75", n), frames, ours("openhands75", rep))
            measure(fps, ("holistic543", n), frames, ours("holistic543", 0))
            if peer:
                copy = tmp_path / f"pf_{n}"
                shutil.copytree(corpus, copy)
                measure(fps, ("pose-format", n), frames, [[str(peer), "--format", "mediapipe", "--directory",
                                                           str(copy), "--num-workers", str(n),
                                                           "--additional-config", "model_complexity=1"]])
            names = [k for k in ("bare", "openhands75", "holistic543", "pose-format") if (k, n) in fps]
            print(f"workers={n}  frames/s     " + "  ".join(f"{k}: {fps[k, n]:6.1f}" for k in names))
            print(f"workers={n}  CPU ms/frame " + "  ".join(f"{k}: {1000 * CPU[k, n] / frames:6.1f}" for k in names),
                  flush=True)
        print()
        for n in sorted({n for _, n in fps}):
            ours = fps["openhands75", n]
            print(f"workers={n}: overhead vs bare loop = {fps['bare', n] / ours - 1:+.1%} wall-clock, "
                  f"{CPU['openhands75', n] / CPU['bare', n] - 1:+.1%} CPU "
                  f"(ours/bare = {ours / fps['bare', n]:.3f}; holistic543/bare = "
                  f"{fps['holistic543', n] / fps['bare', n]:.3f})")
            if ("pose-format", n) in fps:
                print(f"workers={n}: ours / pose-format = {ours / fps['pose-format', n]:.2f}x (openhands75), "
                      f"{fps['holistic543', n] / fps['pose-format', n]:.2f}x (holistic543, same content); "
                      f"CPU per frame pose-format / ours = {CPU['pose-format', n] / CPU['holistic543', n]:.2f}x "
                      "(holistic543)")
        ws = sorted({n for _, n in fps})
        if len(ws) > 1:
            a, b = ws[0], ws[-1]
            for k in ("bare", "openhands75", "pose-format"):
                if (k, a) in fps and (k, b) in fps:
                    print(f"{k}: workers={b} / workers={a} = {fps[k, b] / fps[k, a]:.2f}x")
        if not peer:
            print(f"pose-format not run: {args.peer} not found (see the module docstring to install it)")


if __name__ == "__main__":
    main()
