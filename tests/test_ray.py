"""extract-pose on a real local Ray (2 CPUs, no dashboard): same bits as the local pool, resume,
more workers than CPUs, and actors killed mid-video (as an OOM kill or a lost node would)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sldata.extract import run_extraction
from tests.test_extract_scale import kill_worker_of, pkls, same_pose, tiny

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster() -> None:
    """One Ray runtime for the module: starting one costs ~10 s."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for i in range(4):
        tiny(root / f"v{i}.mp4", frames=4, size=96, start=3 * i)
    return root


@pytest.fixture(scope="module")
def local(videos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local")
    assert run_extraction(videos, out, workers=1, in_process=True).ok
    return out


def test_ray_gives_the_local_bits_clamps_workers_and_resumes(cluster: None, videos: Path, local: Path,
                                                             tmp_path: Path) -> None:
    # More workers than CPUs was: 3 of 4 videos extracted, then a silent hang (the third actor never got a CPU).
    out = tmp_path / "ray"
    rep = run_extraction(videos, out, workers=3, executor="ray")
    assert rep.ok and rep.extracted == 4
    assert rep.notices == ["--workers 3 is more than the Ray cluster's 2 CPUs: running 2 workers (one CPU each)"]
    assert pkls(out) == pkls(local)
    for name in pkls(out):
        assert same_pose(out / name, local / name)
    (out / "v2.pkl").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pkl")}
    rep = run_extraction(videos, out, executor="ray")  # default: one worker per cluster CPU
    assert rep.ok and rep.skipped == 3 and rep.extracted == 1 and rep.notices == []
    assert {n: t for n, t in ((p.name, p.stat().st_mtime_ns) for p in out.glob("*.pkl")) if n in before} == before
    assert same_pose(out / "v2.pkl", local / "v2.pkl")


def test_killed_actor_is_retried_then_recorded(cluster: None, tmp_path: Path) -> None:
    # Was: ActorDiedError traceback in the driver, exit 1, no failures file.
    videos, out = tmp_path / "videos", tmp_path / "out"
    for i in range(3):
        tiny(videos / f"k{i}.mp4", frames=12, size=128, start=i)
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(rep=run_extraction(videos, out, workers=2, executor="ray")))
    run.start()
    try:
        deadline = time.monotonic() + 180
        first = kill_worker_of(out, "k0", set(), deadline)  # k0's actor twice: recorded as failed
        kill_worker_of(out, "k1", set(), deadline)          # k1's once: its retry on a fresh actor succeeds
        kill_worker_of(out, "k0", {first}, deadline)        # (both start at once, on the two actors)
    finally:
        run.join(timeout=240)
    rep = result["rep"]
    assert rep.extracted == 2 and [f["video"] for f in rep.failed] == ["k0.mp4"]
    assert rep.failed[0]["reason"].startswith("worker process died on each of 2 attempts")
    assert (out / "failures.jsonl").read_text().count("k0.mp4") == 1
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "k1.pkl", "k2.pkl"]  # no temporaries
    ref = run_extraction(videos / "k1.mp4", tmp_path / "ref", workers=1, in_process=True)
    assert ref.ok and same_pose(out / "k1.pkl", tmp_path / "ref" / "k1.pkl")
