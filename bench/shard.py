"""Benchmark `sldata shard` against its two baselines on the same v1 dataset, in one run.

* `--size 100` (HDF5 object copies, several shards per rep) against a bare
  one-process `H5Ocopy` loop writing the same shard files from the same videos
  (no plan, no verification, no fsync, no temporary): what one process of h5py
  can do at best.
* `--size 1000` (every split here is under 1000 videos: whole-file copies)
  against `cp -r`.

Writes a v1 mock (real feature sizes, float16; 8 clips per video of 32-256
frames, about How2Sign sentence length) under a scratch dir, then times each
command as a child process (plus `sync`, so write-back counts for all of them)
and reads its peak RSS from GNU time (the largest process of its tree: shard's
workers are children). Runs alternate (bare, shard 100, cp, shard 1000, ...)
so all see the same page-cache and load conditions, and the best of `--repeat`
is kept for each. Prints throughput, the two ratios and the targets. The scratch
dir is deleted at the end.

    .venv/bin/python bench/shard.py [--gb 0.7] [--repeat 3] [--tmp /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sldata.mock import REAL_DIMS, mock_annotation  # noqa: E402
from sldata.features import annotation_path, v1_path  # noqa: E402
from sldata.io import write_json  # noqa: E402

REPS = ["dino", "mae", "pose", "sign2vec"]


def make_v1(root: Path, gb: float, clips: int, min_t: int, max_t: int, seed: int = 0) -> tuple[int, int]:
    """A v1 `train` split of about `gb` GB, written straight with h5py from one reused buffer."""
    rng = np.random.default_rng(seed)
    per_t = sum(REAL_DIMS[r] * 2 // (2 if r == "sign2vec" else 1) for r in REPS)  # bytes per frame, all reps
    videos = max(1, int(gb * 1e9 / (clips * (min_t + max_t) / 2 * per_t)))
    ann = mock_annotation(rng, videos, clips)
    frames = rng.integers(min_t, max_t + 1, size=(videos, clips))
    buf = rng.standard_normal((max_t, max(REAL_DIMS.values())), dtype=np.float32).astype(np.float16)
    root.mkdir(parents=True)
    for rep in REPS:
        d = REAL_DIMS[rep]
        with h5py.File(v1_path(root, rep, "train"), "w") as f:
            for i, vid in enumerate(ann):
                g = f.create_group(vid)
                for c in range(clips):
                    t = int(frames[i, c]) // (2 if rep == "sign2vec" else 1)
                    g.create_dataset(str(c), data=buf[:t, :d])
    write_json(annotation_path(root, "train"), ann)
    return videos, sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, float]:
    """(seconds including a final sync, peak RSS in bytes, CPU seconds) of one command.

    RSS and CPU come from GNU time (`%M`, `%U + %S`) wrapped around the command: a
    child forked straight from this (large) Python process would report the
    parent's pages. CPU includes the command's children (shard's workers);
    on this shared machine wall time mostly measures the neighbours' load, CPU
    time does not.
    """
    out_file = cwd / ".rss"
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", str(out_file), *cmd], cwd=cwd,
                          stdout=subprocess.DEVNULL)
    os.sync()
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    rss, user, system = out_file.read_text().split()[-3:]
    out_file.unlink()
    return dt, int(rss) * 1024, float(user) + float(system)


#: The baseline of `--size 100`: one process, h5py's `Group.copy` (H5Ocopy) video by video into
#: shard files of SIZE videos, in annotation order. argv: SRC DST SIZE.
BARE_LOOP = """
import json, sys
from pathlib import Path
import h5py
src, dst, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
videos = list(json.loads((src / "annotation.train.json").read_bytes()))
for path in sorted(src.glob("*.train.h5")):
    rep = path.name.split(".")[0]
    (dst / rep).mkdir(parents=True)
    with h5py.File(path, "r") as f:
        for k in range(0, len(videos), size):
            with h5py.File(dst / rep / f"{rep}.train.{k // size}.h5", "w") as out:
                for v in videos[k:k + size]:
                    f.copy(f[v], out, name=v)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=0.7)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--min-frames", type=int, default=32)
    ap.add_argument("--max-frames", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tmp", default="/tmp")
    args = ap.parse_args()
    sldata = str(Path(sys.executable).parent / "sldata")
    scratch = Path(tempfile.mkdtemp(prefix="sldata-bench-shard-", dir=args.tmp))
    commands = {
        "bare H5Ocopy loop, 100/shard": ([sys.executable, "-c", BARE_LOOP, "mock_data", "bare", "100"], "bare"),
        "sldata shard --size 100": ([sldata, "shard", "--size", "100", "--quiet"], "mock_data_multi"),
        "cp -r": (["cp", "-r", "mock_data", "copy"], "copy"),
        "sldata shard --size 1000": ([sldata, "shard", "--size", "1000", "--quiet"], "mock_data_multi"),
    }
    try:
        t0 = time.perf_counter()
        videos, nbytes = make_v1(scratch / "mock_data", args.gb, args.clips, args.min_frames, args.max_frames)
        os.sync()
        print(f"dataset: v1, 1 split, {videos} videos x {args.clips} clips x {len(REPS)} reps (real D, float16), "
              f"{nbytes / 1e6:.0f} MB, made in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
        shards: dict[str, int] = {}
        for _ in range(args.repeat):  # alternate so all see the same page-cache and load conditions
            for name, (cmd, out) in commands.items():
                runs[name].append(timed(cmd, scratch))
                shards[name] = len(list((scratch / out / "dino").glob("*.h5"))) if (scratch / out / "dino").is_dir() \
                    else len(list((scratch / out).glob("dino*.h5")))
                shutil.rmtree(scratch / out)
        best = {name: (min(x[0] for x in r), max(x[1] for x in r), min(x[2] for x in r))
                for name, r in runs.items()}
        for name, (t, rss, cpu) in best.items():
            print(f"{name:<30}: {t:6.2f} s  {nbytes / t / 1e6:7.1f} MB/s  CPU {cpu:5.2f} s  "
                  f"peak RSS {rss / 1e6:6.1f} MB  ({shards[name]} dino file(s))")
        r100 = best["bare H5Ocopy loop, 100/shard"][0] / best["sldata shard --size 100"][0]
        r1000 = best["cp -r"][0] / best["sldata shard --size 1000"][0]
        rss = max(best["sldata shard --size 100"][1], best["sldata shard --size 1000"][1])
        print(f"ratio --size 100 to the bare loop: {r100:.2f}x (target >= 1.0x)")
        print(f"ratio --size 1000 to cp -r:        {r1000:.2f}x (target >= 0.9x)")
        print(f"peak RSS of shard:                 {rss / 1e6:.0f} MB (target < 300 MB)")
        print("all runs (s): " + "; ".join(f"{name} " + ", ".join(f"{x[0]:.2f}" for x in r)
                                           for name, r in runs.items()))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
