"""Training configs: every shipped config validates; bad ones fail with the key path and exit 2."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import Field

from schemas.config import OptimConfig, Strict, TrainConfig
from sltrain.config import ConfigError, apply_overrides, build_config, dump_yaml, load_config
from sltrain.loop import lr_factor
from sltrain.recipes.base import Recipe
from tests.conftest import ROOT, assert_no_traceback, invoke_cli

CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))

MINIMAL = {
    "recipe": "dpc",
    "data": {"path": "poses.h5"},
    "trainer": {"out_dir": "runs/x", "max_steps": 3, "batch_size": 2},
}


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_validates_and_names_its_run_command(path: Path) -> None:
    cfg = load_config(path)
    lines = path.read_text().splitlines()
    assert lines[0].lower().startswith("# run"), f"{path} must start with a comment giving its run command"
    header = [ln for ln in lines[:4] if ln.startswith("#")]
    assert any(f"sltrain {cmd} " in ln and path.name in ln for ln in header for cmd in ("pretrain", "finetune")), header
    # the resolved form is itself a valid config (what every run saves)
    again = build_config(yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg


def test_shipped_configs_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert {"dpc_smoke_cpu.yaml", "dpc_openhands_gpu.yaml"} <= names


def test_gpu_config_has_openhands_hyper_parameters() -> None:
    cfg = load_config(ROOT / "configs" / "dpc_openhands_gpu.yaml")
    d = cfg.data
    assert (d.num_seq, d.seq_len, d.downsample, d.transform.joints) == (7, 10, 3, "openhands27")
    assert cfg.trainer.batch_size == 128
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adamw", 1e-4, 1e-5)
    assert (cfg.optim.schedule, cfg.optim.grad_clip) == ("cosine", 1.0)


def test_unknown_key_lists_allowed_keys(tmp_path: Path) -> None:
    data = {**MINIMAL, "trainer": {**MINIMAL["trainer"], "max_step": 5}}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    msg = str(err.value)
    assert "trainer.max_step: unknown key" in msg and "max_steps" in msg and "batch_size" in msg


def test_nested_unknown_key_and_bad_literal_name_the_path_and_allowed_values(tmp_path: Path) -> None:
    data = {**MINIMAL, "data": {"path": "p.h5", "transform": {"joints": "coco", "flip": True}}}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    msg = str(err.value)
    assert "data.transform.joints" in msg and "'openhands27'" in msg and "'openhands75'" in msg
    assert "data.transform.flip: unknown key" in msg and "rotation_deg" in msg


def test_bad_type_and_range(tmp_path: Path) -> None:
    data = {**MINIMAL, "trainer": {**MINIMAL["trainer"], "batch_size": "many"}, "optim": {"lr": -1}}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    assert "trainer.batch_size" in str(err.value) and "optim.lr" in str(err.value)


def test_dist_timeout_is_a_positive_number_of_seconds(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    assert load_config(path).trainer.dist_timeout_s == 1800
    assert load_config(path, ["trainer.dist_timeout_s=2.5"]).trainer.dist_timeout_s == 2.5
    with pytest.raises(ConfigError, match=r"trainer.dist_timeout_s: Input should be greater than 0 \(got 0\)"):
        load_config(path, ["trainer.dist_timeout_s=0"])


def test_cross_field_rule(tmp_path: Path) -> None:
    data = {**MINIMAL, "data": {"path": "p.h5", "num_seq": 3, "pred_step": 3}}
    with pytest.raises(ConfigError, match="pred_step"):
        load_config(_write(tmp_path, data))


def test_unknown_and_missing_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown recipe 'dcp'.*dpc"):
        load_config(_write(tmp_path, {**MINIMAL, "recipe": "dcp"}))
    with pytest.raises(ConfigError, match="recipe: required key is missing"):
        load_config(_write(tmp_path, {k: v for k, v in MINIMAL.items() if k != "recipe"}))


def test_overrides_are_typed_and_revalidated(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    cfg = load_config(path, ["trainer.max_steps=7", "model.encoder.channels=[8, 16]", "optim.grad_clip=null",
                             "trainer.resume=never", "data.transform.shear=0.25"])
    assert cfg.trainer.max_steps == 7 and cfg.model.encoder.channels == [8, 16]
    assert cfg.optim.grad_clip is None and cfg.trainer.resume == "never" and cfg.data.transform.shear == 0.25
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        load_config(path, ["trainer.batch_size=0"])
    with pytest.raises(ConfigError, match="trainer.bogus: unknown key"):
        load_config(path, ["trainer.bogus=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["trainer.max_steps"])
    with pytest.raises(ConfigError, match="recipe is a value, not a section"):
        apply_overrides(MINIMAL, ["recipe.x=1"])


def test_resume_accepts_a_path(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL), ["trainer.resume=runs/x/checkpoints/step_00000010.pt"])
    assert cfg.trainer.resume == Path("runs/x/checkpoints/step_00000010.pt")


def test_yaml_problems_are_user_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: dpc\ndata: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_cli_config_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    data = {**MINIMAL, "trainer": {**MINIMAL["trainer"], "max_step": 5}}
    path = _write(tmp_path, data)
    proc = invoke_cli("sltrain", "pretrain", path, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_no_traceback(proc)
    assert "trainer.max_step: unknown key" in proc.stderr
    proc = invoke_cli("sltrain", "pretrain", _write(tmp_path, MINIMAL), "--set", "trainer.batch_size=lots", cwd=tmp_path)
    assert proc.returncode == 2 and "trainer.batch_size" in proc.stderr
    assert_no_traceback(proc)
    proc = invoke_cli("sltrain", "finetune", _write(tmp_path, MINIMAL), "--set", "oops", cwd=tmp_path)
    assert proc.returncode == 2 and "expected KEY=VALUE" in proc.stderr
    assert_no_traceback(proc)


def test_lr_schedule_warmup_then_cosine_to_floor() -> None:
    cfg = OptimConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, cfg, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, cfg, 20) == pytest.approx(1.0)
    assert lr_factor(12, cfg, 20) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(20, cfg, 20) == pytest.approx(0.1)
    lin = OptimConfig(lr=1.0, schedule="linear")
    assert lr_factor(5, lin, 10) == pytest.approx(0.5)


@pytest.mark.parametrize("command,config", [("finetune", "dpc_smoke_cpu.yaml"), ("pretrain", "islr_smoke_cpu.yaml"),
                                            ("finetune", "sign_llava_smoke_cpu.yaml")])
def test_command_refuses_a_recipe_it_does_not_run(command: str, config: str, tmp_path: Path) -> None:
    proc = invoke_cli("sltrain", command, ROOT / "configs" / config, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"not `sltrain {command}`" in proc.stderr
    assert_no_traceback(proc)
    assert not (tmp_path / "runs").exists()


def test_out_dirs_own_config_as_input_is_never_rewritten(tmp_path: Path) -> None:
    """`sltrain pretrain runs/x/config.yaml` reruns as it is; with a changed value it is refused."""
    from sldata.errors import UserError
    from sltrain.config import load_config, save_resolved

    first = load_config(ROOT / "configs" / "dpc_smoke_cpu.yaml")
    own = tmp_path / "config.yaml"
    save_resolved(first, own)
    before = own.read_bytes()
    same = load_config(own)
    save_resolved(same, own)  # identical: nothing to write
    changed = load_config(own, ["optim.lr=0.5"])
    with pytest.raises(UserError, match="is trainer.out_dir's own config.yaml"):
        save_resolved(changed, own)
    assert own.read_bytes() == before


# --- the one recipe registry: an added entry is loaded, built, routed and evaluated --------------

class ToyData(Strict):
    n: int = 8


class ToyModel(Strict):
    width: int = 2


class ToyConfig(TrainConfig):
    recipe: Literal["toy"] = "toy"
    data: ToyData = Field(default_factory=ToyData)
    model: ToyModel = Field(default_factory=ToyModel)


class ToyRecipe(Recipe):
    """The smallest recipe: a linear model fitted to a line (what a recipe author writes)."""

    name = "toy"

    def build_model(self) -> Any:
        import torch

        return torch.nn.Linear(1, self.cfg.model.width)

    def train_dataset(self) -> Any:
        import torch

        x = torch.arange(self.cfg.data.n, dtype=torch.float32)[:, None]
        return torch.utils.data.TensorDataset(x, 2 * x)

    def training_step(self, model: Any, batch: Any) -> tuple[Any, dict[str, Any]]:
        x, y = batch
        return ((model(x) - y) ** 2).mean(), {}


def _toy(tmp_path: Path, **trainer: Any) -> Path:
    return _write(tmp_path, {"recipe": "toy", "trainer": {"out_dir": str(tmp_path / "run"), "max_steps": 2,
                                                           "batch_size": 4, "num_workers": 0,
                                                           "tensorboard": False, **trainer}})


def test_one_registry_entry_adds_a_recipe_to_config_loading_and_the_cli(tmp_path: Path, monkeypatch) -> None:
    from sltrain import recipes

    monkeypatch.setitem(recipes.RECIPES, "toy", recipes.RecipeEntry(
        f"{__name__}:ToyConfig", f"{__name__}:ToyRecipe", "pretrain"))
    cfg = load_config(_toy(tmp_path))
    assert isinstance(cfg, ToyConfig) and cfg.data.n == 8
    wrong = invoke_cli("sltrain", "finetune", _toy(tmp_path))
    assert wrong.returncode == 2, wrong.stderr
    assert "recipe 'toy' is run by `sltrain pretrain`, not `sltrain finetune` (which runs islr)" in wrong.stderr
    assert not (tmp_path / "run").exists()
    ran = invoke_cli("sltrain", "pretrain", _toy(tmp_path), "--json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["steps"] == 2 and (tmp_path / "run" / "checkpoints" / "step_00000002.pt").is_file()
    scored = invoke_cli("sltrain", "evaluate", _toy(tmp_path), "-c",
                        tmp_path / "run" / "checkpoints" / "step_00000002.pt")
    assert scored.returncode == 2 and "recipe 'toy' has no evaluation command" in scored.stderr, scored.stderr


@pytest.mark.parametrize("entry,message", [
    (("tests.no_such_module:ToyConfig", f"{__name__}:ToyRecipe", "pretrain"),
     "recipe 'toy' is not available in this installation (No module named 'tests.no_such_module')"),
    ((f"{__name__}:ToyConfig", f"{__name__}:NoSuchRecipe", "pretrain"),
     "recipe 'toy' is not available in this installation"),
    ((f"{__name__}:ToyConfig", f"{__name__}:ToyRecipe", "train"),
     "recipe 'toy' is registered for `sltrain train`, which does not exist (commands: pretrain, finetune)"),
])
def test_a_broken_or_misrouted_registry_entry_exits_2_naming_the_recipe(
        entry: tuple[str, str, str], message: str, tmp_path: Path, monkeypatch) -> None:
    from sltrain import recipes

    monkeypatch.setitem(recipes.RECIPES, "toy", recipes.RecipeEntry(*entry))
    proc = invoke_cli("sltrain", "pretrain", _toy(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert message in " ".join(proc.stderr.split())
    assert_no_traceback(proc)
    unknown = invoke_cli("sltrain", "pretrain", _write(tmp_path, {**MINIMAL, "recipe": "toy2"}))
    assert unknown.returncode == 2 and "unknown recipe 'toy2' (allowed: dpc, islr, sign_llava, toy)" in unknown.stderr


@pytest.mark.parametrize("config,old", [("islr_smoke_cpu.yaml", "data.eval_batch_size"),
                                        ("sign_llava_smoke_cpu.yaml", "model.eval_batch_size")])
def test_eval_batch_size_lives_in_trainer_and_its_old_place_names_the_new_key(config: str, old: str,
                                                                             tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    cfg = load_config(ROOT / "configs" / config, ["trainer.eval_batch_size=3"])
    assert cfg.trainer.eval_batch_size == 3
    with pytest.raises(ConfigError, match=rf"  {old}: moved to trainer.eval_batch_size \(set it there\)"):
        load_config(ROOT / "configs" / config, [f"{old}=3"])
    command = "finetune" if config.startswith("islr") else "pretrain"
    proc = invoke_cli("sltrain", command, ROOT / "configs" / config, "--set", f"{old}=3", cwd=tmp_path)
    assert proc.returncode == 2 and f"{old}: moved to trainer.eval_batch_size" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()
