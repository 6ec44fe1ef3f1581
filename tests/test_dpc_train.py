"""DPC training end to end on CPU: real pose h5, real torch steps, real `sltrain` processes."""

from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from sldata.errors import DataError, UserError
from sldata.pose import PoseH5Writer, PoseSample
from sldata.synthetic_pose import write_unlabeled
from sltrain.checkpoint import list_step_checkpoints, load_checkpoint
from sltrain.config import build_config, load_config
from sltrain.loop import train
from sltrain.metrics import read_csv
from sltrain.recipes import build_recipe
from tests.conftest import BIN, ROOT, assert_no_traceback, invoke_cli, run_cli, tmpfs

TINY = {
    "recipe": "dpc",
    "data": {"path": "poses.h5", "num_seq": 4, "seq_len": 4, "downsample": 1, "pred_step": 2,
             "windows_per_video": 4, "augment": {"shear_std": 0.1, "rotation_std": 0.15}},
    "model": {"encoder": {"channels": [8, 16], "temporal_kernel": 3}},
    "optim": {"lr": 0.003, "warmup_steps": 2},
    "trainer": {"out_dir": "run", "max_steps": 6, "batch_size": 4, "num_workers": 0, "device": "cpu", "threads": 1,
                "log_every": 1, "save_every": 3, "tensorboard": False},
}


def _cfg_file(tmp_path: Path, name: str = "cfg.yaml", **sections: dict) -> Path:
    data = {k: ({**v, **sections.get(k, {})} if isinstance(v, dict) else v) for k, v in TINY.items()}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def poses(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_unlabeled(tmp_path_factory.mktemp("pose") / "poses.h5", videos=6, seed=0, frames=(24, 40))


def test_a_few_steps_lower_the_loss_on_a_repeated_batch(poses: Path, tmp_path: Path) -> None:
    cfg = build_config({**TINY, "data": {**TINY["data"], "path": str(poses)},
                        "trainer": {**TINY["trainer"], "out_dir": str(tmp_path)}})
    recipe = build_recipe(cfg)
    torch.manual_seed(0)
    model = recipe.build_model()
    ds = recipe.train_dataset()
    np.random.seed(0)
    batch = torch.stack([ds[4 * v] for v in range(6)])  # one window of each video
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the configs do: tiny models are faster on one thread
    try:
        for _ in range(30):
            loss, metrics = recipe.training_step(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    assert losses[-1] < 0.5 * losses[0], losses
    assert float(metrics["top1"]) >= 0.75, losses  # same-video negatives over 2 steps: chance is 1/2


def test_pretrain_cli_writes_config_metrics_tensorboard_and_checkpoints(poses: Path, tmp_path: Path) -> None:
    cfg = _cfg_file(tmp_path, data={"path": str(poses)}, trainer={"tensorboard": True})
    proc = run_cli("sltrain", "pretrain", cfg, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 6 and summary["resumed_from"] is None
    assert summary["data"]["videos"] == 6 and summary["data"]["windows/epoch"] == 24
    run = tmp_path / "run"
    resolved = load_config(run / "config.yaml")
    assert resolved.data.path == poses and resolved.trainer.max_steps == 6 and resolved.optim.lr == 0.003
    rows = read_csv(run / "train.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 7))
    assert {"loss", "top1", "pretext_top1_video", "pretext_top1_step", "lr", "windows_per_s", "data_wait"} <= set(rows[0])
    for r in rows:  # the diagnostics are accuracies, logged every step
        assert 0 <= float(r["pretext_top1_video"]) <= 1 and 0 <= float(r["pretext_top1_step"]) <= 1
    assert all(0 <= float(r["data_wait"]) <= 1 for r in rows)
    assert float(rows[0]["lr"]) == pytest.approx(0.0015)  # warm-up step 1 of 2
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(events[0])).Reload().Tags()["scalars"]
    assert {"train/pretext_top1_video", "train/pretext_top1_step", "train/loss"} <= set(tags)
    assert [s for s, _ in list_step_checkpoints(run)] == [3, 6]
    state = load_checkpoint(run / "checkpoints" / "step_00000006.pt")
    assert state["progress"]["step"] == 6 and state["recipe"] == "dpc"
    assert state["extra"]["joints"] == "openhands27" and "encoder.layers.0.gcn.conv.weight" in state["model"]
    # a finished run rerun with resume: auto has nothing left to do and changes nothing
    before = (run / "train.csv").read_bytes()
    again = train(load_config(cfg, [f"trainer.out_dir={run}"]))
    assert again.steps == 6 and again.resumed_from == run / "checkpoints" / "step_00000006.pt"
    assert (run / "train.csv").read_bytes() == before
    # resume: never refuses to mix a new run with this one's checkpoints (a UserError: exit 2)
    with pytest.raises(UserError, match="already holds checkpoints"):
        train(load_config(cfg, [f"trainer.out_dir={run}", "trainer.resume=never"]))


def _popen_pretrain(cfg: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "sltrain"), "pretrain", str(cfg), "--quiet"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_kill_9_then_resume_auto_reproduces_the_uninterrupted_losses(poses: Path, tmp_path: Path) -> None:
    long = {"max_steps": 60, "save_every": 4}
    full = _cfg_file(tmp_path, "full.yaml", data={"path": str(poses)}, trainer={**long, "out_dir": "full"})
    cut = _cfg_file(tmp_path, "cut.yaml", data={"path": str(poses)}, trainer={**long, "out_dir": "cut"})
    proc = _popen_pretrain(full, tmp_path)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()

    proc = _popen_pretrain(cut, tmp_path)
    deadline = time.monotonic() + 300
    while not list_step_checkpoints(tmp_path / "cut") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    done = max(s for s, _ in list_step_checkpoints(tmp_path / "cut"))
    assert 0 < done < 60

    rerun = run_cli("sltrain", "pretrain", cut, "--json", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["resumed_from"].endswith(f"step_{done:08d}.pt") and summary["steps"] == 60
    a, b = read_csv(tmp_path / "full" / "train.csv"), read_csv(tmp_path / "cut" / "train.csv")
    assert [r["step"] for r in b] == [str(s) for s in range(1, 61)]
    for ra, rb in zip(a, b):  # bit-identical losses, accuracies and learning rates
        assert (ra["loss"], ra["top1"], ra["lr"]) == (rb["loss"], rb["top1"], rb["lr"]), ra["step"]
    final_a = load_checkpoint(tmp_path / "full" / "checkpoints" / "step_00000060.pt")["model"]
    final_b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "step_00000060.pt")["model"]
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    assert not [p for p in (tmp_path / "cut" / "checkpoints").iterdir() if ".sldata-tmp-" in p.name]


def test_invalid_pose_input_is_refused_with_findings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["format"] = "openhands-pose"
        f.attrs["keypoint_set"] = "openhands75"
        f.create_dataset("keypoints/v0", data=np.zeros((40, 75, 3), np.float32))
        f.create_dataset("visibility/v0", data=np.zeros((39, 75), np.float32))  # frame counts differ
    proc = invoke_cli("sltrain", "pretrain", _cfg_file(tmp_path, data={"path": str(bad)}), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc)
    assert "pose-shape" in proc.stderr and "refusing to train" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unusable_inputs_exit_2(poses: Path, tmp_path: Path) -> None:
    proc = invoke_cli("sltrain", "pretrain", _cfg_file(tmp_path, data={"path": "absent.h5"}), cwd=tmp_path)
    assert proc.returncode == 2 and "absent.h5" in proc.stderr
    assert_no_traceback(proc)
    # every video shorter than a window, and short videos skipped: nothing to train on (a UserError: exit 2)
    cfg = build_config({**TINY, "data": {**TINY["data"], "path": str(poses), "num_seq": 10, "seq_len": 20,
                                         "downsample": 2, "short_videos": "skip"}})
    with pytest.raises(UserError, match="no video gives a DPC window.*'skipped_short': 6"):
        build_recipe(cfg).train_dataset()


def test_short_videos_are_padded_and_counted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "short.h5"
    with PoseH5Writer(path) as w:
        for i, n in enumerate([9, 12, 40]):
            w.add(f"s{i}", PoseSample(rng.random((n, 75, 3), dtype=np.float32), np.ones((n, 75), np.float32)))
    cfg = load_config(_cfg_file(tmp_path, data={"path": str(path), "min_frames": 10, "short_videos": "pad"}),
                      [f"trainer.out_dir={tmp_path / 'run'}", "trainer.max_steps=2"])
    lines: list[str] = []
    result = train(cfg, log=lines.append)
    assert result.steps == 2
    assert result.data["videos"] == 3 and result.data["padded"] == 1 and result.data["skipped_empty"] == 1
    assert any("videos 3, used 2, padded 1, skipped_short 0, skipped_empty 1" in ln for ln in lines), lines


def _torchrun(cfg: Path, cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    sets = [a for o in overrides for a in ("--set", o)]
    return subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "cli.sltrain_app",
                           "pretrain", str(cfg), "--json", *sets], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})


def test_torchrun_two_cpu_processes_resume_exactly(poses: Path, tmp_path: Path) -> None:
    """Two gloo processes; a run stopped at step 2 and resumed equals the uninterrupted one bit for bit.

    Encoder dropout makes each rank draw its own random masks: the resume must restore
    every rank's RNG state, not only rank 0's (it used to reseed the others).
    """
    cfg = _cfg_file(tmp_path, data={"path": str(poses)}, model={"encoder": {"channels": [8, 16], "temporal_kernel": 3,
                                                                            "dropout": 0.3}},
                    optim={"schedule": "constant"}, trainer={"max_steps": 4, "save_every": 2})
    proc = _torchrun(cfg, tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # rank 0 alone reports
    assert summary["world_size"] == 2 and summary["steps"] == 4
    rows = read_csv(tmp_path / "run" / "train.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4"]
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000004.pt")
    assert state["progress"]["samples_seen"] == 4 * 4 * 2
    assert len(state["rng_ranks"]) == 2 and not torch.equal(state["rng_ranks"][0]["torch"], state["rng_ranks"][1]["torch"])

    cut = _torchrun(cfg, tmp_path, "trainer.out_dir=cut", "trainer.max_steps=2")
    assert cut.returncode == 0, cut.stderr
    resumed = _torchrun(cfg, tmp_path, "trainer.out_dir=cut")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from"].endswith("step_00000002.pt")
    again = read_csv(tmp_path / "cut" / "train.csv")
    assert [(r["step"], r["loss"], r["top1"]) for r in again] == [(r["step"], r["loss"], r["top1"]) for r in rows]
    final = load_checkpoint(tmp_path / "cut" / "checkpoints" / "step_00000004.pt")
    assert all(torch.equal(state["model"][k], final["model"][k]) for k in state["model"])


def test_smoke_config_learns_on_pose_extracted_from_the_sample_video(tmp_path: Path) -> None:
    """The demo path: MediaPipe pose of tests/data/astronaut.mp4 (30 frames), the shipped smoke config."""
    import shutil

    from sldata.extract.run import run_extraction
    from tests.conftest import ROOT

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(ROOT / "tests" / "data" / "astronaut.mp4", videos)
    report = run_extraction(videos, tmp_path / "poses", workers=1, h5=tmp_path / "poses.h5")
    assert report.ok and not report.failed, report.failed
    cfg = load_config(ROOT / "configs" / "dpc_smoke_cpu.yaml",
                      [f"data.path={tmp_path / 'poses.h5'}", f"trainer.out_dir={tmp_path / 'run'}",
                       "trainer.tensorboard=false"])
    result = train(cfg)
    assert result.steps == cfg.trainer.max_steps and result.data["videos"] == 1
    losses = [float(r["loss"]) for r in read_csv(tmp_path / "run" / "train.csv")]
    assert losses[-1] < 0.85 * losses[0], losses


def test_foreign_pickle_checkpoint_is_refused_without_unsafe_advice(tmp_path: Path) -> None:
    import collections
    import pickle

    path = tmp_path / "foreign.pt"
    path.write_bytes(pickle.dumps(collections.Counter(a=1)))
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    assert "not a readable sltrain checkpoint" in str(info.value)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


# --- several processes: rank 0 validates once and evaluates without tripping the timeout ---------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _islr_rank(rank: int, port: int, cfg: dict, slow: str, marks: Path) -> None:
    """One of two gloo processes (torch.multiprocessing.spawn) training `cfg` in-process.

    Counts calls of the real validator per rank; `slow` adds a sleep to rank 0's
    evaluation ("eval") or to rank 1's first training step ("step").
    """
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    import sldata.validate
    from sltrain.recipes.islr import ISLRRecipe

    validate, evaluate, step = sldata.validate.validate, ISLRRecipe.evaluate, ISLRRecipe.training_step

    def counted(*args, **kwargs):
        (marks / f"validated-by-rank{rank}").touch()
        return validate(*args, **kwargs)

    def slow_eval(self, model):
        time.sleep(8 if slow == "eval" else 0)
        return evaluate(self, model)

    def slow_step(self, model, batch):
        if slow == "step" and rank == 1 and not (marks / "slept").exists():
            (marks / "slept").touch()
            time.sleep(8)
        return step(self, model, batch)

    sldata.validate.validate, ISLRRecipe.evaluate, ISLRRecipe.training_step = counted, slow_eval, slow_step
    result = train(build_config(cfg))
    (marks / f"done-rank{rank}.json").write_text(json.dumps(result.eval_metrics))


def test_two_processes_validate_once_and_slow_evaluation_never_trips_the_timeout(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from sldata.synthetic_pose import write_labeled
    from tests.test_islr import islr_cfg

    data = write_labeled(tmp_path / "signs", per_class={"train": 6, "dev": 2, "test": 2}, frames=(16, 24))
    cfg = islr_cfg(data, tmp_path / "run", trainer__max_steps=2, trainer__batch_size=4, trainer__eval_every=2,
                   trainer__save_every=2, trainer__dist_timeout_s=4)
    marks = tmp_path / "marks"
    marks.mkdir()
    # evaluation on rank 0 takes 8 s; the other rank waits, though training collectives time out after 4 s
    mp.spawn(_islr_rank, args=(_free_port(), cfg, "eval", marks), nprocs=2)
    assert sorted(p.name for p in marks.iterdir()) == ["done-rank0.json", "done-rank1.json", "validated-by-rank0"]
    assert "dev_top1" in json.loads((marks / "done-rank0.json").read_text())
    assert [r["step"] for r in read_csv(tmp_path / "run" / "eval.csv")] == ["2"]

    # the same 4 s deadline does stop a rank that hangs 8 s inside a training step
    cfg["trainer"]["out_dir"] = str(tmp_path / "hung")
    shutil.rmtree(marks)
    marks.mkdir()
    with pytest.raises(Exception, match=r"(?i)time ?out|timed out"):
        mp.spawn(_islr_rank, args=(_free_port(), cfg, "step", marks), nprocs=2)
    assert not list(marks.glob("done-*"))


# --- one run per out_dir, and unusable out_dirs / disks / inputs: one line, exit 2 ----------------

def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_second_run_on_the_same_out_dir_exits_2_naming_the_first(poses: Path, tmp_path: Path) -> None:
    import socket

    cfg = _cfg_file(tmp_path, data={"path": str(poses)}, trainer={"max_steps": 100000, "save_every": 100000})
    first = _popen_pretrain(cfg, tmp_path)
    try:
        deadline = time.monotonic() + 300
        csv_path = tmp_path / "run" / "train.csv"
        while (not csv_path.is_file() or len(read_csv(csv_path)) < 2) and first.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read().decode()
        second = run_cli("sltrain", "pretrain", cfg, "--quiet", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
        line = _one_error_line(second)
        assert line.startswith(f"error: run: another run is writing this trainer.out_dir (pid {first.pid} on "
                               f"{socket.gethostname()}, since "), line
        assert line.endswith(f"sltrain pretrain {cfg} --quiet); wait for it to finish or stop it"), line
        assert first.poll() is None  # the first run goes on undisturbed
    finally:
        first.kill()
        first.wait(timeout=60)
    steps = [int(r["step"]) for r in read_csv(tmp_path / "run" / "train.csv")]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no step twice
    # the kernel dropped the killed run's lock: a new run starts (from scratch: no checkpoint yet)
    rerun = run_cli("sltrain", "pretrain", cfg, "--quiet", "--set", "trainer.max_steps=2", cwd=tmp_path,
                    env={"OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr
    assert [r["step"] for r in read_csv(tmp_path / "run" / "train.csv")] == ["1", "2"]


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_out_dir_that_is_or_is_below_a_file_exits_2(poses: Path, tmp_path: Path, where: str) -> None:
    (tmp_path / "afile").write_text("not a directory\n")
    out = "afile" if where == "file" else "afile/run"
    cfg = _cfg_file(tmp_path, data={"path": str(poses)}, trainer={"out_dir": out})
    line = _one_error_line(invoke_cli("sltrain", "pretrain", cfg, "--quiet", cwd=tmp_path))
    expected = ("trainer.out_dir afile: exists and is not a directory" if where == "file"
                else "trainer.out_dir afile/run: afile is a file, not a directory")
    assert line == f"error: {expected}"
    assert (tmp_path / "afile").read_text() == "not a directory\n"


def test_out_dir_without_write_permission_exits_2(poses: Path) -> None:
    """As user nobody (the tests run as root, which may write anywhere)."""
    import shutil as sh
    import tempfile

    if sh.which("setpriv") is None:
        pytest.skip("setpriv is not installed: cannot drop root to test permissions")
    base = Path(tempfile.mkdtemp(prefix="sltrain-perm-"))
    try:
        base.chmod(0o755)
        sh.copy(poses, base / "poses.h5")
        (base / "ro").mkdir(mode=0o555)
        (base / "ro").chmod(0o555)
        cfg = _cfg_file(base, data={"path": str(base / "poses.h5")}, trainer={"out_dir": "ro/run"})
        for p in (cfg, base / "poses.h5"):
            p.chmod(0o644)
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               str(BIN / "sltrain"), "pretrain", str(cfg), "--quiet"], cwd=base,
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(base)})
        if "Operation not permitted" in proc.stderr and "setpriv" in proc.stderr:
            pytest.skip(f"setpriv cannot switch users here: {proc.stderr.strip()}")
        assert _one_error_line(proc) == "error: trainer.out_dir ro/run: cannot create it: Permission denied"
        assert not (base / "ro" / "run").exists()
    finally:
        sh.rmtree(base, ignore_errors=True)


def test_disk_full_while_writing_a_checkpoint_exits_2_and_keeps_the_previous(poses: Path, tmp_path: Path) -> None:
    """A real 1 MiB tmpfs, filled up after a first checkpoint (skipped where mounting is not permitted)."""
    import errno

    with tmpfs(tmp_path / "small", "1m") as mnt:
        cfg = _cfg_file(tmp_path, data={"path": str(poses)}, trainer={"out_dir": str(mnt / "run")})
        first = run_cli("sltrain", "pretrain", cfg, "--quiet", "--set", "trainer.max_steps=3", cwd=tmp_path,
                        env={"OMP_NUM_THREADS": "1"})
        assert first.returncode == 0, first.stderr
        ckpts = mnt / "run" / "checkpoints"
        kept = (ckpts / "step_00000003.pt").read_bytes()
        filler = mnt / "filler"
        with open(filler, "wb", buffering=0) as fh:
            with pytest.raises(OSError) as full:
                while True:
                    fh.write(b"\0" * 65536)
        assert full.value.errno == errno.ENOSPC
        os.truncate(filler, filler.stat().st_size - 32768)  # room for config and CSV rows, not a checkpoint
        proc = run_cli("sltrain", "pretrain", cfg, "--quiet", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
        line = _one_error_line(proc)
        assert line.startswith(f"error: {ckpts / 'step_00000006.pt'}: cannot write: No space left on device; "), line
        assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000003.pt"]  # no temporary left behind
        assert (ckpts / "step_00000003.pt").read_bytes() == kept
        filler.unlink()  # space again: the rerun resumes from step 3 and finishes
        again = run_cli("sltrain", "pretrain", cfg, "--json", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["resumed_from"].endswith("step_00000003.pt")
        assert [r["step"] for r in read_csv(mnt / "run" / "train.csv")] == [str(s) for s in range(1, 7)]


def _garble_compressed_chunks(path: Path) -> None:
    """Overwrite the start of every filter-compressed chunk: real h5py reads then fail."""
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visit(names.append)
        chunks = [f[n].id.get_chunk_info(i) for n in names if isinstance(f[n], h5py.Dataset) and f[n].chunks
                  for i in range(f[n].id.get_num_chunks())]
    with open(path, "r+b") as fh:
        for c in chunks:
            if c.filter_mask == 0 and c.size > 68:  # 0: the compression filter was applied
                fh.seek(c.byte_offset + 2)
                fh.write(b"\xff" * 64)


def test_garbled_pose_chunk_read_in_a_dataloader_worker_exits_2_naming_the_file(tmp_path: Path) -> None:
    bad = write_unlabeled(tmp_path / "garbled.h5", videos=6, seed=0, frames=(24, 40))
    _garble_compressed_chunks(bad)
    cfg = _cfg_file(tmp_path, data={"path": str(bad), "validate_input": False}, trainer={"num_workers": 1})
    line = _one_error_line(run_cli("sltrain", "pretrain", cfg, "--quiet", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}))
    assert str(bad) in line and "Can't synchronously read data" in line, line
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").iterdir())


class _Failing(torch.utils.data.Dataset):
    """Items 0..7; item 5 raises the library's one-line error, as `sldata.io.reading` does."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        if i == 5:
            raise DataError("cannot read: filter returned failure during read", path="poses.h5", video="v5")
        return torch.zeros(2)


MESSAGE = "poses.h5 video 'v5': cannot read: filter returned failure during read"


@pytest.mark.parametrize("workers", [0, 1])
def test_a_dataset_error_reaches_the_training_process_as_its_own_message(workers: int) -> None:
    from sltrain.loop import FailFastCollate, ItemFailed, SeededItems, worker_message

    items = SeededItems(_Failing(), seed=0)
    loader = torch.utils.data.DataLoader(items, batch_size=4, sampler=[(i, 0) for i in range(8)],
                                         num_workers=workers, collate_fn=FailFastCollate(None))
    batches = list(loader)
    assert batches[0].shape == (4, 2)
    assert batches[1] == ItemFailed(MESSAGE)
    # a DataLoader of a recipe's own (evaluation): torch rebuilds the error from the worker's traceback
    plain = torch.utils.data.DataLoader(_Failing(), batch_size=4, num_workers=workers)
    with pytest.raises(UserError) as raised:
        list(plain)
    assert worker_message(str(raised.value)) == MESSAGE


def test_checkpoint_temporaries_of_dead_runs_are_removed_and_a_live_writers_kept(tmp_path: Path) -> None:
    """`resume` starts by cleaning checkpoints/ with sldata.io's rule for temporaries: dead writers' only."""
    from sldata.io import tmp_name
    from sltrain.checkpoint import clean_temporaries, step_path

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = step_path(tmp_path, 4)
        path.parent.mkdir(parents=True)
        mine = f"-{os.getpid()}-"
        of_dead = Path(str(tmp_name(path)).replace(mine, f"-{dead.pid}-"))
        of_live = Path(str(tmp_name(path)).replace(mine, f"-{live.pid}-"))
        for p in (of_dead, of_live, path):
            p.write_bytes(b"x")
        clean_temporaries(tmp_path)
        assert sorted(p.name for p in path.parent.iterdir()) == sorted([of_live.name, path.name])
    finally:
        live.kill()
        live.wait()
