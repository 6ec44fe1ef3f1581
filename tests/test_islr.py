"""ISLR fine-tuning (`sltrain finetune`, recipe islr) and its `sltrain evaluate`, on real files.

Data is the synthetic motion-class set (sldata.synthetic_pose): four classes that
differ only by the path the right hand traces, written as a real pose h5 and
labels CSVs, so learning is real. DPC checkpoints are made here by a real
`recipe: dpc` run of the shared loop.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sldata.errors import UserError
from sldata.synthetic_pose import SyntheticSet, write_labeled, write_unlabeled
from tests.conftest import assert_no_traceback, run_cli

ENCODER = {"channels": [8, 16], "temporal_kernel": 3}
#: One intra-op thread: these models are tiny, and on a shared 2-core box torch's
#: thread pool spinning against other processes makes a step ~20x slower.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sltrain(*args: Any):
    return run_cli("sltrain", *map(str, args), env=ONE_THREAD)


# --- helpers ------------------------------------------------------------------------------

def islr_cfg(data: SyntheticSet, out: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "recipe": "islr",
        "data": {"pose": str(data.pose), "labels": {s: str(p) for s, p in data.labels.items()},
                 "eval_split": "dev", "num_frames": 16, "seq_len": 4,
                 "transform": {"joints": "openhands27", "coords": 2, "shear": 0.1, "rotation_deg": 6}},
        "model": {"encoder": dict(ENCODER), "gru_layers": 1},
        "optim": {"name": "adam", "lr": 0.01, "warmup_steps": 2},
        "trainer": {"out_dir": str(out), "max_steps": 40, "batch_size": 16, "num_workers": 0, "device": "cpu", "threads": 1,
                    "log_every": 5, "eval_every": 20, "save_every": 20, "tensorboard": False, "seed": 0},
    }
    for dotted, value in over.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


def write_yaml(path: Path, cfg: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def run_train(cfg: dict[str, Any]):
    from sltrain.config import build_config
    from sltrain.loop import train

    return train(build_config(cfg))


def encoder_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.split(".", 1)[0] in ("encoder", "aggregator")}


@pytest.fixture(scope="module")
def signs(tmp_path_factory: pytest.TempPathFactory) -> SyntheticSet:
    return write_labeled(tmp_path_factory.mktemp("signs"), classes=4,
                         per_class={"train": 12, "dev": 5, "test": 5}, seed=3)


@pytest.fixture(scope="module")
def dpc_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `recipe: dpc` checkpoint (a few steps on unlabeled synthetic pose)."""
    root = tmp_path_factory.mktemp("dpc")
    pose = write_unlabeled(root / "unlabeled.h5", videos=12, seed=1)
    res = run_train({
        "recipe": "dpc",
        "data": {"path": str(pose), "num_seq": 4, "seq_len": 4, "downsample": 1, "pred_step": 2,
                 "windows_per_video": 2, "transform": {"joints": "openhands27", "coords": 2}},
        "model": {"encoder": dict(ENCODER), "gru_layers": 1},
        "trainer": {"out_dir": str(root / "run"), "max_steps": 3, "batch_size": 4, "num_workers": 0,
                    "device": "cpu", "log_every": 1, "save_every": 3, "tensorboard": False},
    })
    assert res.last_checkpoint is not None
    return res.last_checkpoint


# --- synthetic data --------------------------------------------------------------------------

def test_synthetic_set_is_a_real_labeled_dataset_and_reproducible(tmp_path: Path) -> None:
    from sldata.pose import PoseH5
    from sldata.validate import validate

    a = write_labeled(tmp_path / "a", classes=3, per_class={"train": 2, "dev": 1}, seed=7)
    b = write_labeled(tmp_path / "b", classes=3, per_class={"train": 2, "dev": 1}, seed=7)
    assert a.classes == ["circle", "line", "zigzag"] and a.counts == {"train": 6, "dev": 3}
    assert a.labels["train"].read_text() == b.labels["train"].read_text()
    assert a.labels["train"].read_text().startswith("key,label,signer\n")
    with PoseH5(a.pose) as pa, PoseH5(b.pose) as pb:
        assert pa.keys() == pb.keys() and len(pa) == 9
        for k in pa.keys():
            sa, sb = pa.read(k), pb.read(k)
            assert np.array_equal(sa.keypoints, sb.keypoints) and np.array_equal(sa.confidences, sb.confidences)
            assert sa.keypoints.shape[1:] == (75, 3) and sa.fps == 25.0
            missing = sa.confidences == 0
            assert (sa.keypoints[missing] == 0).all()  # a missing part is all zeros (SPEC §3)
    report = validate(a.pose, labels=list(a.labels.values()))
    assert report.ok and not report.warnings, report.to_dict()
    with pytest.raises(UserError, match="between 2 and 8"):
        write_labeled(tmp_path / "c", classes=9)


# --- frame sampling and data ------------------------------------------------------------------

def test_uniform_and_jittered_indices_cover_the_video_in_order() -> None:
    from sltrain.data.labeled_pose import jittered_indices, uniform_indices

    assert uniform_indices(100, 4).tolist() == [12, 37, 62, 87]
    assert uniform_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # short video: frames repeat, none dropped
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = jittered_indices(100, 10, g)
        assert len(idx) == 10 and (np.diff(idx) >= 0).all()
        assert ((idx // 10) == np.arange(10)).all()  # one frame inside each segment
    a = jittered_indices(100, 10, torch.Generator().manual_seed(1))
    b = jittered_indices(100, 10, torch.Generator().manual_seed(2))
    assert a.tolist() != b.tolist()


def test_dataset_gives_fixed_frames_and_uniform_eval_is_deterministic(signs: SyntheticSet, tmp_path: Path) -> None:
    from sltrain.config import build_config
    from sltrain.recipes.islr import ISLRRecipe

    recipe = ISLRRecipe(build_config(islr_cfg(signs, tmp_path / "r")))
    ev = recipe.dataset("dev", train=False)
    x1, y1, _ = ev[0]
    x2, _, _ = ev[0]
    assert x1.shape == (2, 16, 27) and x1.dtype == torch.float32
    assert torch.equal(x1, x2)
    assert recipe.classes[y1] == ev.split.labels[0]
    tr = recipe.dataset("train", train=True)
    torch.manual_seed(0)
    np.random.seed(0)
    a = tr[0][0]
    torch.manual_seed(1)
    np.random.seed(1)
    b = tr[0][0]
    assert a.shape == (2, 16, 27) and not torch.equal(a, b)  # jitter + augmentation at training


def test_class_balanced_draws_classes_equally(tmp_path: Path) -> None:
    from sltrain.data.labeled_pose import ClassBalanced, LabeledPoseDataset, LabeledSplit

    data = write_labeled(tmp_path, classes=2, per_class={"train": 1}, seed=0)
    # skew it: 9 rows of one class, 1 of the other, over the same two videos
    split = LabeledSplit("train", ["train-0000"] * 9 + ["train-0001"], ["a"] * 9 + ["b"], [0] * 9 + [1])
    ds = LabeledPoseDataset(data.pose, split, 8, lambda kp: kp[:, :27, :2].transpose(2, 0, 1).copy())
    bal = ClassBalanced(ds)
    torch.manual_seed(0)
    drawn = [bal[i][1] for i in range(400)]
    assert len(bal) == len(ds) and bal.counts() == {0: 9, 1: 1}
    assert 0.4 < np.mean(drawn) < 0.6  # unbalanced it would be 0.1


def test_class_balanced_uniform_training_runs_through_the_loop(signs: SyntheticSet, tmp_path: Path) -> None:
    res = run_train(islr_cfg(signs, tmp_path / "run", data__class_balanced=True, data__train_sampling="uniform",
                             trainer__max_steps=4, trainer__eval_every=0, trainer__save_every=4))
    assert res.steps == 4 and res.data["sampling"] == "class-balanced"
    assert (tmp_path / "run" / "checkpoints" / "step_00000004.pt").is_file()


# --- training -------------------------------------------------------------------------------------

def test_scratch_training_learns_motion_classes_then_evaluate_writes_reports(signs: SyntheticSet, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = write_yaml(tmp_path / "islr.yaml", islr_cfg(signs, out))
    proc = sltrain("finetune", cfg, "--quiet", "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["steps"] == 40 and res["eval_metrics"]["dev_top1"] >= 0.9, res
    best = torch.load(out / "checkpoints" / "best.pt", weights_only=True)
    assert best["extra"]["classes"] == ["circle", "line", "square", "zigzag"]
    last = torch.load(out / "checkpoints" / "step_00000040.pt", weights_only=True)
    assert last["extra"]["classes"] == best["extra"]["classes"]
    rows = list(csv.DictReader(open(out / "eval.csv")))
    assert [int(r["step"]) for r in rows] == [20, 40] and {"dev_top1", "dev_top5"} <= set(rows[0])
    assert best["metrics"]["dev_top1"] == max(float(r["dev_top1"]) for r in rows)

    proc = sltrain("evaluate", cfg, "--checkpoint", out / "checkpoints" / "best.pt", "--split", "test",
                   "--json")
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    ev = out / "eval_test"
    preds = [json.loads(line) for line in (ev / "predictions.jsonl").read_text().splitlines()]
    truth = {r["key"]: r["label"] for r in csv.DictReader(open(signs.labels["test"]))}
    assert [p["key"] for p in preds] == list(truth)
    for p in preds:
        assert p["label"] == truth[p["key"]]
        assert len(p["top5"]) == 4 and p["top5"][0]["label"] == p["prediction"]  # K=4 < 5
        scores = [t["score"] for t in p["top5"]]
        assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
    top1 = np.mean([p["correct"] for p in preds])
    assert summary["top1"] == pytest.approx(top1) and summary["top5"] == 1.0 and summary["videos"] == 20
    assert json.loads((ev / "scores.json").read_text())["top1"] == pytest.approx(top1)
    per_class = list(csv.DictReader(open(ev / "per_class.csv")))
    assert [r["class"] for r in per_class] == ["circle", "line", "square", "zigzag"]
    assert sum(int(r["support"]) for r in per_class) == 20
    assert sum(int(r["correct"]) for r in per_class) == sum(p["correct"] for p in preds)
    assert (ev / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_to_the_same_weights(signs: SyntheticSet, tmp_path: Path) -> None:
    """torchtune-style: an interrupted run resumed from its checkpoint equals the uninterrupted one."""
    full = tmp_path / "full"
    run_train(islr_cfg(signs, full, trainer__max_steps=10, trainer__save_every=5, trainer__eval_every=5,
                       trainer__log_every=1))
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    (cut / "checkpoints" / "step_00000010.pt").unlink()  # as if killed between step 5 and 10
    res = run_train(islr_cfg(signs, cut, trainer__max_steps=10, trainer__save_every=5, trainer__eval_every=5,
                             trainer__log_every=1))
    assert res.resumed_from == cut / "checkpoints" / "step_00000005.pt"
    a = torch.load(full / "checkpoints" / "step_00000010.pt", weights_only=True)["model"]
    b = torch.load(cut / "checkpoints" / "step_00000010.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = lambda p: [(r["step"], r["loss"]) for r in csv.DictReader(open(p / "train.csv"))]  # noqa: E731
    assert rows(full) == rows(cut) and len(rows(cut)) == 10


def test_linear_probe_from_dpc_keeps_the_encoder_unchanged(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "probe"
    res = run_train(islr_cfg(signs, out, model__init="dpc", model__checkpoint=str(dpc_ckpt),
                             model__freeze_encoder=True, trainer__max_steps=8, trainer__eval_every=4,
                             trainer__save_every=8))
    assert res.steps == 8
    dpc = encoder_tensors(torch.load(dpc_ckpt, weights_only=True)["model"])
    after = torch.load(out / "checkpoints" / "step_00000008.pt", weights_only=True)
    probe = encoder_tensors(after["model"])
    assert dpc.keys() == probe.keys() and len(dpc) > 10
    for k in dpc:  # parameters and BatchNorm statistics alike, bit-exact
        assert torch.equal(dpc[k], probe[k]), k
    # the head did train: its weights moved from a fresh initialisation
    from sltrain.config import build_config
    from sltrain.recipes.islr import ISLRRecipe

    torch.manual_seed(0)
    fresh = ISLRRecipe(build_config(islr_cfg(signs, tmp_path / "x"))).new_model(4).state_dict()
    assert not torch.equal(fresh["head.2.weight"], after["model"]["head.2.weight"])
    # only the head is handed to the optimizer
    assert len(after["optimizer"]["param_groups"][0]["params"]) == 4  # BN weight, bias; linear weight, bias


def test_finetune_from_dpc_starts_from_its_encoder(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    from sltrain.config import build_config
    from sltrain.recipes.islr import ISLRRecipe

    recipe = ISLRRecipe(build_config(islr_cfg(signs, tmp_path / "r", model__init="dpc",
                                              model__checkpoint=str(dpc_ckpt))))
    model = recipe.build_model()
    dpc = encoder_tensors(torch.load(dpc_ckpt, weights_only=True)["model"])
    mine = encoder_tensors(model.state_dict())
    assert all(torch.equal(dpc[k], mine[k]) for k in dpc)
    assert all(p.requires_grad for p in model.parameters())


# --- refusals ------------------------------------------------------------------------------------

def test_mismatched_checkpoint_exits_2_naming_the_parameter(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    cfg = islr_cfg(signs, tmp_path / "run", model__init="dpc", model__checkpoint=str(dpc_ckpt))
    cfg["model"]["encoder"]["channels"] = [8, 32]
    proc = sltrain("finetune", write_yaml(tmp_path / "bad.yaml", cfg), "--quiet")
    assert_no_traceback(proc)
    assert proc.returncode == 2
    assert "model.encoder.channels" in proc.stderr and "[8, 16]" in proc.stderr, proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_tensor_mismatch_is_refused_before_anything_is_copied(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    """Even when a checkpoint's config agrees, tensors are all checked first: never a partial load."""
    from sltrain.config import build_config
    from sltrain.models.classifier import load_encoder
    from sltrain.recipes.islr import ISLRRecipe

    model = ISLRRecipe(build_config(islr_cfg(signs, tmp_path / "r"))).new_model(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = dict(torch.load(dpc_ckpt, weights_only=True)["model"])
    state["aggregator.weight_hh_l0"] = torch.zeros(3, 3)  # the last tensors to be copied
    with pytest.raises(UserError, match=r"'aggregator.weight_hh_l0' has shape \(3, 3\)"):
        load_encoder(model, state, dpc_ckpt)
    del state["aggregator.weight_hh_l0"]
    with pytest.raises(UserError, match="lacks parameter 'aggregator.weight_hh_l0'"):
        load_encoder(model, state, dpc_ckpt)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_init_dpc_refuses_a_checkpoint_of_another_recipe(signs: SyntheticSet, tmp_path: Path) -> None:
    run_train(islr_cfg(signs, tmp_path / "a", trainer__max_steps=2, trainer__eval_every=0, trainer__save_every=2))
    with pytest.raises(UserError, match="recipe 'islr'"):
        run_train(islr_cfg(signs, tmp_path / "b", model__init="dpc",
                           model__checkpoint=str(tmp_path / "a" / "checkpoints" / "step_00000002.pt")))


@pytest.mark.parametrize("over, key", [
    ({"model__init": "dpc"}, "model"),  # init: dpc without a checkpoint
    ({"data__num_frames": 18}, "data"),  # not a multiple of seq_len
    ({"data__eval_split": "val"}, "data"),
    ({"data__labels": {"dev": "labels.dev.csv"}}, "data.labels"),  # no train
    ({"data__bogus": 1}, "data.bogus"),
])
def test_bad_config_is_refused_naming_the_key(signs: SyntheticSet, tmp_path: Path, over: dict, key: str) -> None:
    from sltrain.config import ConfigError, build_config

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_config(islr_cfg(signs, tmp_path, **over))


def test_misnamed_labels_file_is_refused(signs: SyntheticSet, tmp_path: Path) -> None:
    from sltrain.config import ConfigError, build_config

    other = tmp_path / "dev_labels.csv"
    shutil.copy(signs.labels["dev"], other)
    cfg = islr_cfg(signs, tmp_path)
    cfg["data"]["labels"]["dev"] = str(other)
    with pytest.raises(ConfigError, match=r"labels\.dev\.csv"):
        build_config(cfg)


# --- labels findings through the trainer -----------------------------------------------------------

def labels_variant(signs: SyntheticSet, root: Path, edit: dict[str, str]) -> SyntheticSet:
    """A copy of the labels files (pose h5 shared, never modified) with some files' text replaced."""
    root.mkdir(parents=True, exist_ok=True)
    labels = {}
    for split, path in signs.labels.items():
        labels[split] = root / path.name
        labels[split].write_text(edit.get(split, path.read_text()), encoding="utf-8")
    return SyntheticSet(root, signs.pose, labels, signs.classes)


def test_invalid_labels_csv_is_refused_with_exit_1(signs: SyntheticSet, tmp_path: Path) -> None:
    text = signs.labels["train"].read_text().replace("key,label,signer", "video,gloss,signer", 1)
    data = labels_variant(signs, tmp_path / "l", {"train": text})
    proc = sltrain("finetune", write_yaml(tmp_path / "c.yaml", islr_cfg(data, tmp_path / "run")))
    assert_no_traceback(proc)
    assert proc.returncode == 1
    assert "labels-invalid" in proc.stderr and "line 1" in proc.stderr, proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_unknown_key_is_an_error_and_refused(signs: SyntheticSet, tmp_path: Path) -> None:
    from sltrain.loop import InputInvalid

    text = signs.labels["dev"].read_text() + "no-such-video,circle,s0\n"
    data = labels_variant(signs, tmp_path / "l", {"dev": text})
    with pytest.raises(InputInvalid) as exc:
        run_train(islr_cfg(data, tmp_path / "run"))
    errors = exc.value.report.errors
    assert [f.code for f in errors] == ["labels-unknown-key"] and errors[0].video == "no-such-video"


def test_unlabeled_and_unseen_class_are_warnings_printed_and_training_runs(signs: SyntheticSet, tmp_path: Path) -> None:
    train_lines = signs.labels["train"].read_text().splitlines()
    dropped = train_lines[1].split(",")[0]
    dev_lines = signs.labels["dev"].read_text().splitlines()
    first_dev = dev_lines[1].split(",")
    dev_lines[1] = f"{first_dev[0]},spiral,{first_dev[2]}"  # a class train never shows
    data = labels_variant(signs, tmp_path / "l", {"train": "\n".join([train_lines[0], *train_lines[2:]]) + "\n",
                                                   "dev": "\n".join(dev_lines) + "\n"})
    cfg = write_yaml(tmp_path / "c.yaml", islr_cfg(data, tmp_path / "run", trainer__max_steps=2,
                                                   trainer__eval_every=2, trainer__save_every=2))
    proc = sltrain("finetune", cfg)
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    out = proc.stderr + proc.stdout
    assert "labels-unlabeled x1" in out and dropped in out
    assert "labels-unseen-class x1" in out and "spiral" in out
    # evaluation keeps the unseen-class video, counted wrong and listed in per_class.csv
    proc = sltrain("evaluate", cfg, "--checkpoint", tmp_path / "run" / "checkpoints" / "step_00000002.pt",
                   "--split", "dev", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["unseen_class_videos"] == 1 and summary["videos"] == 20
    per_class = {r["class"]: r for r in csv.DictReader(open(tmp_path / "run" / "eval_dev" / "per_class.csv"))}
    assert per_class["spiral"]["support"] == "1" and per_class["spiral"]["correct"] == "0"


def test_evaluate_refuses_a_dpc_checkpoint_and_a_missing_split(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", islr_cfg(signs, tmp_path / "run"))
    proc = sltrain("evaluate", cfg, "--checkpoint", dpc_ckpt, "--split", "test")
    assert_no_traceback(proc)
    assert proc.returncode == 2 and "a checkpoint of recipe 'dpc', not of this config's recipe 'islr'" in proc.stderr


def test_example_configs_validate() -> None:
    from sltrain.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("islr_smoke_cpu.yaml", "islr_include_gpu.yaml"):
        cfg = load_config(root / name)
        assert cfg.recipe == "islr"
        assert (root / name).read_text().startswith("# Run: sltrain finetune configs/" + name)


def test_evaluate_out_that_is_a_file_exits_2(signs: SyntheticSet, dpc_ckpt: Path, tmp_path: Path) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", islr_cfg(signs, tmp_path / "run"))
    afile = tmp_path / "afile"
    afile.write_text("keep")
    proc = sltrain("evaluate", cfg, "--checkpoint", dpc_ckpt, "--split", "test", "--out", afile)
    assert_no_traceback(proc)
    assert proc.returncode == 2 and "not a directory" in proc.stderr, proc.stderr
    assert afile.read_text() == "keep"


def test_evaluate_harness_batches_by_trainer_eval_batch_size_and_refuses_bad_checkpoints(
        signs: SyntheticSet, tmp_path: Path, monkeypatch) -> None:
    """`sltrain.evaluate` in-process: the one eval batch size, and exit-2 messages for checkpoints it cannot use."""
    from sltrain import evaluate
    from sltrain.checkpoint import load_checkpoint, save_checkpoint
    from sltrain.config import build_config
    from sltrain.recipes.islr import ISLRRecipe

    raw = islr_cfg(signs, tmp_path / "run", trainer__max_steps=1, trainer__save_every=1, trainer__eval_every=0)
    ckpt = run_train(raw).last_checkpoint
    batches: list[int] = []
    predict = ISLRRecipe.predict
    monkeypatch.setattr(ISLRRecipe, "predict", lambda self, model, batch: batches.append(len(batch["x"]))
                        or predict(self, model, batch))
    cfg = build_config(islr_cfg(signs, tmp_path / "run", trainer__eval_batch_size=3))
    summary = evaluate(cfg, ckpt, "test", tmp_path / "ev")
    assert batches == [3] * 6 + [2] and summary["videos"] == 20 and summary["step"] == 1
    assert json.loads((tmp_path / "ev" / "scores.json").read_text())["top1"] == summary["top1"]
    assert len((tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()) == 20
    assert summary["scores"] == str(tmp_path / "ev" / "scores.json")

    with pytest.raises(UserError, match=r"absent\.pt: no such checkpoint"):
        evaluate(cfg, tmp_path / "absent.pt", "test", tmp_path / "ev2")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match=r"garbage\.pt: not a readable sltrain checkpoint"):
        evaluate(cfg, garbage, "test", tmp_path / "ev2")
    state = load_checkpoint(ckpt)
    state["model"].pop(next(iter(state["model"])))
    cut = save_checkpoint(tmp_path / "cut.pt", {k: v for k, v in state.items() if k not in ("format", "version")})
    with pytest.raises(UserError, match=r"cut\.pt: does not match this config's model \(Error"):
        evaluate(cfg, cut, "test", tmp_path / "ev2")
    assert not (tmp_path / "ev2").exists()


def test_evaluate_names_a_pose_that_cannot_be_read_in_a_dataloader_worker(signs: SyntheticSet, tmp_path: Path) -> None:
    from sltrain import evaluate
    from sltrain.config import build_config
    from tests.test_dpc_train import _garble_compressed_chunks

    data = SyntheticSet(**{**signs.__dict__, "pose": tmp_path / "poses.h5"})
    shutil.copy(signs.pose, data.pose)
    ckpt = run_train(islr_cfg(data, tmp_path / "run", trainer__max_steps=1, trainer__save_every=1,
                              trainer__eval_every=0)).last_checkpoint
    _garble_compressed_chunks(data.pose)
    with pytest.raises(UserError) as err:
        evaluate(build_config(islr_cfg(data, tmp_path / "run", trainer__num_workers=1)), ckpt, "test", tmp_path / "ev")
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(data.pose) in message, message
    assert not (tmp_path / "ev").exists()
