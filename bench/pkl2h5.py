"""Benchmark `sldata pkl2h5` at 1 and 2 workers against a bare one-process h5py loop, in one run.

The bare loop is what a one-off script does (OpenHands' pkl_to_h5.py, with this
project's layout so the files compare): for each pkl, `pickle.load`, then
`create_dataset` for keypoints and visibility with the same 64-frame lzf chunks.
It has no checks, no resume and no failure report; pkl2h5 has all three (restricted
unpickling, parts flushed every 60 s, a final merge of the parts into the output).

Corpus: synthetic openhands75 pose with real-pose statistics (sldata.synthetic_pose:
smooth motion, a missing hand as zeros, so lzf compresses as on real data), one pkl
per video of 150-400 frames, written under a scratch dir, for two corpus sizes so
that peak RSS can be seen not to grow with the corpus. Each command runs as a child
process timed with GNU time (peak RSS = the largest single process: the writer or
one worker); the pkls are read once beforehand so every run reads from the page
cache; runs alternate and the best of `--repeat` is kept. MB/s counts pkl bytes.
CPU is user + system seconds of all the command's processes: on a loaded machine
(the shared dev box) the wall-clock ratio mostly says how much CPU each process
count was given, CPU says what the work costs.

    .venv/bin/python bench/pkl2h5.py [--videos 400,800] [--repeat 2] [--tmp /tmp]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_corpus(folder: Path, videos: int, seed: int = 0) -> tuple[int, int]:
    """`videos` pkls as extract-pose writes them; returns (bytes, frames)."""
    import numpy as np

    from sldata.synthetic_pose import SHAPES, motion_video

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    nbytes = frames = 0
    for i in range(videos):
        strokes = [str(s) for s in rng.choice(SHAPES, size=int(rng.integers(4, 9)))]
        s = motion_video(strokes, rng, frames=(30, 50))
        data = {"keypoints": s.keypoints, "confidences": s.confidences, "fps": 25.0, "width": 640, "height": 480,
                "meta": {"mediapipe_version": "0.10.21", "options": {"keypoints": "openhands75"}}}
        p = folder / f"video{i:06d}.pkl"
        p.write_bytes(pickle.dumps(data, protocol=4))
        nbytes += p.stat().st_size
        frames += s.num_frames
    return nbytes, frames


def bare_loop(src: str, out: str) -> None:
    """The baseline: one process, load each pkl, create its two datasets (same chunks and filter)."""
    import h5py

    with h5py.File(out, "w") as f:
        kp, vis = f.create_group("keypoints"), f.create_group("visibility")
        for p in sorted(Path(src).rglob("*.pkl")):
            with open(p, "rb") as fh:
                d = pickle.load(fh)
            k, c = d["keypoints"].astype("float32"), d["confidences"].astype("float32")
            n = min(len(k), 64)
            kp.create_dataset(p.stem, data=k, chunks=(n, k.shape[1], 3), compression="lzf")
            vis.create_dataset(p.stem, data=c, chunks=(n, c.shape[1]), compression="lzf")


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, float]:
    """(seconds, peak RSS in bytes of the largest process, CPU seconds of all its processes), via GNU time."""
    rss_file = cwd / ".rss"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_file), *cmd], cwd=cwd,
                          capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rss, user, sys_ = rss_file.read_text().split()[-3:]
    rss_file.unlink()
    return dt, int(rss) * 1024, float(user) + float(sys_)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--bare":
        bare_loop(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="400,800", help="comma-separated corpus sizes (videos)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--tmp", default=None, help="scratch parent dir (default: system temp)")
    args = ap.parse_args()
    sldata = str(Path(sys.executable).parent / "sldata")
    scratch = Path(tempfile.mkdtemp(prefix="bench-pkl2h5-", dir=args.tmp))
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")
    try:
        for videos in (int(v) for v in args.videos.split(",")):
            src = scratch / f"pkls{videos}"
            t0 = time.perf_counter()
            nbytes, frames = make_corpus(src, videos)
            print(f"\ncorpus: {videos} pkls, {frames} frames, {nbytes / 1e6:.1f} MB (made in "
                  f"{time.perf_counter() - t0:.1f} s)")
            for p in src.iterdir():  # into the page cache: every run reads the same way
                p.read_bytes()
            runs: dict[str, list[tuple[float, int, float]]] = {"bare": [], "w1": [], "w2": []}
            cmds = {"bare": [sys.executable, __file__, "--bare", str(src), "bare.h5"],
                    "w1": [sldata, "pkl2h5", str(src), "-o", "w1.h5", "-w", "1", "-q"],
                    "w2": [sldata, "pkl2h5", str(src), "-o", "w2.h5", "-w", "2", "-q"]}
            for _ in range(args.repeat):
                for name, cmd in cmds.items():
                    runs[name].append(timed(cmd, scratch))
                    (scratch / f"{name}.h5").unlink()
            bare_t = min(r[0] for r in runs["bare"])
            for name, label in (("bare", "bare h5py loop (1 process)"), ("w1", "pkl2h5 --workers 1"),
                                ("w2", "pkl2h5 --workers 2")):
                t, rss = min(r[0] for r in runs[name]), max(r[1] for r in runs[name])
                cpu = min(r[2] for r in runs[name])
                print(f"{label:<28}: {t:6.2f} s  {nbytes / t / 1e6:7.1f} MB/s  {frames / t:9.0f} frames/s  "
                      f"CPU {cpu:6.2f} s  peak RSS {rss / 1e6:6.1f} MB  x{bare_t / t:.2f} of bare")
        print(f"\nload average {os.getloadavg()[0]:.1f} at end")
        print("targets: --workers 1 >= 1.0x bare, --workers 2 >= 1.5x bare, peak RSS flat across corpus sizes")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
