"""sign_llava through the shared loop and the real CLI: train, checkpoint, resume, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sldata.errors import UserError
from sldata.mock import write_mock
from sltrain.checkpoint import load_checkpoint, step_path
from sltrain.config import build_config, load_config
from sltrain.loop import train

from .conftest import ROOT, assert_no_traceback, invoke_cli, run_cli

SMOKE = ROOT / "configs" / "sign_llava_smoke_cpu.yaml"


def _data(tmp_path: Path) -> Path:
    root = tmp_path / "mock_data_multi"
    write_mock(root, layout="v2", videos=2, clips=6, splits=["train", "dev"],
               reps=["dino", "pose", "sign2vec"], seed=2, shard_size=1, min_frames=4, max_frames=16)
    return root


def _raw(data: Path, out: Path, **trainer) -> dict:
    return {
        "recipe": "sign_llava",
        "data": {"path": str(data), "reps": ["dino", "pose", "sign2vec"], "context_clips": 1,
                 "max_length": 400, "eval_max_clips": 6},
        "model": {"llm": "tiny-random", "projector": "mlp2x_gelu", "max_new_tokens": 8},
        "optim": {"lr": 2e-3, "schedule": "constant", "grad_clip": 1.0},
        "trainer": {"out_dir": str(out), "max_steps": 4, "batch_size": 4, "num_workers": 0, "seed": 0,
                    "log_every": 1, "save_every": 2, "keep_last": 5, "eval_every": 0, "tensorboard": False,
                    **trainer},
    }


def _csv(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    head = lines[0].split(",")
    return [dict(zip(head, line.split(","))) for line in lines[1:]]


def test_smoke_config_validates() -> None:
    cfg = load_config(SMOKE)
    assert cfg.recipe == "sign_llava" and cfg.model.llm == "tiny-random"
    gpu = load_config(ROOT / "configs" / "sign_llava_llama3_8b_gpu.yaml")
    assert gpu.data.reps == ["mae", "sign2vec", "dino", "pose"] and gpu.model.dtype == "bfloat16"
    # upstream Sign_LLaVA's pretraining values (signllava/configs/pretrain.yaml @0a32174)
    assert (gpu.optim.lr, gpu.optim.weight_decay, gpu.optim.label_smoothing) == (2e-3, 0.1, 0.1)
    assert gpu.data.layout == "chat" and gpu.data.context_clips == 0 and gpu.data.context_prelude == 0


def test_checkpoints_hold_trainable_parts_only_and_resume_matches(tmp_path: Path) -> None:
    data = _data(tmp_path)
    full = train(build_config(_raw(data, tmp_path / "full", max_steps=4)))
    assert full.steps == 4 and full.data["clips"] == 12
    state = load_checkpoint(step_path(tmp_path / "full", 4))
    keys = set(state["model"])
    assert keys == {"video_markers", *(f"projectors.{r}.{i}.{w}" for r in ("dino", "pose", "sign2vec")
                                        for i in (0, 2) for w in ("weight", "bias"))}
    assert state["extra"]["llm"] == "tiny-random" and state["extra"]["dims"]["pose"] == 32
    first = load_checkpoint(step_path(tmp_path / "full", 2))["model"]
    assert not torch.equal(first["projectors.dino.0.weight"], state["model"]["projectors.dino.0.weight"])

    # stop at step 2, then continue to 4 with resume: auto; the losses match the uninterrupted run
    part = tmp_path / "part"
    assert train(build_config(_raw(data, part, max_steps=2))).steps == 2
    resumed = train(build_config(_raw(data, part, max_steps=4)))
    assert resumed.resumed_from == step_path(part, 2) and resumed.steps == 4
    a, b = _csv(tmp_path / "full" / "train.csv"), _csv(part / "train.csv")
    assert [r["step"] for r in b] == ["1", "2", "3", "4"]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]


def test_tiny_lm_is_reproducible_across_runs(tmp_path: Path) -> None:
    data = _data(tmp_path)
    train(build_config(_raw(data, tmp_path / "a", max_steps=1)))
    train(build_config(_raw(data, tmp_path / "b", max_steps=1)))
    fa = load_checkpoint(step_path(tmp_path / "a", 1))["extra"]["llm_fingerprint"]
    fb = load_checkpoint(step_path(tmp_path / "b", 1))["extra"]["llm_fingerprint"]
    assert fa == fb


def test_cli_pretrain_then_evaluate(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "run"
    sets = ["--set", f"data.path={data}", "--set", f"trainer.out_dir={out}", "--set", "trainer.max_steps=3",
            "--set", "trainer.batch_size=4", "--set", "trainer.save_every=3", "--set", "trainer.eval_every=3",
            "--set", "data.eval_max_clips=4", "--set", "data.reps=[dino,pose,sign2vec]"]
    proc = run_cli("sltrain", "pretrain", SMOKE, *sets, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 3 and summary["data"]["clips"] == 12
    assert set(summary["eval_metrics"]) == {"loss", "target_acc"}
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "tiny-random-llm" / "config.json").is_file()
    row = _csv(out / "train.csv")[-1]
    for key in ("loss", "target_acc", "shorten/visual_samples", "shorten/context_samples", "tokens/target"):
        assert key in row

    ckpt = out / "checkpoints" / "step_00000003.pt"
    proc = run_cli("sltrain", "evaluate", SMOKE, "--checkpoint", ckpt, "--split", "dev", *sets[:4],
                   "--set", "data.reps=[dino,pose,sign2vec]", "--set", "model.max_new_tokens=6", "--json",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    pred_path = out / "eval_dev" / "predictions.dev.step_00000003.jsonl"
    assert Path(scores["predictions"]) == pred_path and Path(scores["scores"]).is_file()
    rows = [json.loads(line) for line in pred_path.read_text().splitlines()]
    assert len(rows) == scores["clips"] == 12
    ann = json.loads((data / "annotation.dev.json").read_text())
    assert all(r["reference"] == ann[r["video"]][r["clip"]]["translation"] for r in rows)
    assert all(isinstance(r["prediction"], str) for r in rows)
    on_disk = json.loads(Path(scores["scores"]).read_text())
    assert 0.0 <= on_disk["bleu"] <= 100.0 and 0.0 <= on_disk["chrf"] <= 100.0
    assert on_disk["bleu_signature"].startswith("nrefs:1")


def test_cli_user_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    data = _data(tmp_path)
    base = ["--set", f"data.path={data}", "--set", f"trainer.out_dir={tmp_path / 'r'}"]
    proc = invoke_cli("sltrain", "pretrain", SMOKE, *base, "--set", "data.contxt_clips=2", cwd=tmp_path)
    assert proc.returncode == 2 and "contxt_clips" in proc.stderr
    assert_no_traceback(proc)
    proc = invoke_cli("sltrain", "pretrain", SMOKE, *base, "--set", "model.projector=conv", cwd=tmp_path)
    assert proc.returncode == 2 and "mlp2x_gelu" in proc.stderr
    proc = invoke_cli("sltrain", "pretrain", SMOKE, *base, "--set", f"model.llm={tmp_path / 'no-model'}",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "not a local model directory" in proc.stderr
    assert_no_traceback(proc)
    # mae is not in this dataset
    proc = invoke_cli("sltrain", "pretrain", SMOKE, *base, cwd=tmp_path)
    assert proc.returncode == 2 and "mae not in the dataset" in proc.stderr
    assert_no_traceback(proc)


def test_overlong_target_refused_or_skipped(tmp_path: Path) -> None:
    data = _data(tmp_path)
    ann_path = data / "annotation.train.json"
    ann = json.loads(ann_path.read_text())
    video = next(iter(ann))
    ann[video]["2"]["translation"] = " ".join(["the teacher saw the movie"] * 40)
    ann_path.write_text(json.dumps(ann))
    raw = _raw(data, tmp_path / "o", max_steps=1)
    with pytest.raises(UserError, match=r"1 clip\(s\) have a target that alone exceeds data.max_length=400"):
        train(build_config(raw))
    raw["data"]["overlong_target"] = "skip"
    raw["trainer"]["out_dir"] = str(tmp_path / "o2")
    result = train(build_config(raw))
    assert result.data["clips"] == 11 and result.data["skipped/overlong-target"] == 1


def test_evaluate_refuses_a_checkpoint_of_another_lm(tmp_path: Path) -> None:
    from sltrain import evaluate

    data = _data(tmp_path)
    train(build_config(_raw(data, tmp_path / "a", max_steps=1)))
    raw = _raw(data, tmp_path / "b", max_steps=1)
    raw["model"]["tiny"] = {"seed": 5}
    with pytest.raises(UserError, match="trained on another frozen LM"):
        evaluate(build_config(raw), step_path(tmp_path / "a", 1), "dev", tmp_path / "eval")


def test_preflight_validation_refuses_broken_data_but_lets_skips_through(tmp_path: Path) -> None:
    import gc

    import h5py
    import numpy as np

    from sldata.features import FeatureDataset
    from sltrain.loop import InputInvalid

    data = _data(tmp_path)
    view = FeatureDataset(data).split("train")
    video = view.videos[0]
    with h5py.File(view.h5_file(video, "pose"), "a") as f:
        del f[video]["3"]  # a missing clip: skipped and counted with missing_rep: skip
    result = train(build_config(_raw(data, tmp_path / "a", max_steps=1)))
    assert result.data["skipped/missing-rep"] == 1 and result.data["clips"] == 11
    gc.collect()  # the finished run's lazily opened read handles
    with h5py.File(view.h5_file(video, "dino"), "a") as f:
        del f[video]["4"]
        f[video]["4"] = np.zeros((5, 7), dtype=np.float16)  # D differs from the rest of the rep
    with pytest.raises(InputInvalid) as exc:
        train(build_config(_raw(data, tmp_path / "b", max_steps=1)))
    assert [(f.code, f.rep) for f in exc.value.report.errors] == [("bad-shape", "dino")]


def test_changed_tiny_sizes_in_an_existing_run_dir_are_refused(tmp_path: Path) -> None:
    data = _data(tmp_path)
    train(build_config(_raw(data, tmp_path / "a", max_steps=1)))
    raw = _raw(data, tmp_path / "a", max_steps=2)
    raw["model"]["tiny"] = {"num_layers": 3}
    with pytest.raises(UserError, match="holds a tiny-random LM built with"):
        train(build_config(raw))
