"""The core install alone (no torch, mediapipe, opencv, matplotlib) runs the data commands.

A real venv with only the core dependencies (pyproject's `dependencies`), the
project installed into it, and the quick start run there as a user would.
Commands that need an extra exit 2 naming it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lean")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in ("sldata", "sltrain", "cli", "schemas"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "-c", str(ROOT / "constraints.txt")]
    proc = subprocess.run([*pip, "--no-build-isolation", str(src)], capture_output=True, text=True)
    if proc.returncode != 0 and "setuptools" in proc.stderr:  # a Python whose venv lacks setuptools
        proc = subprocess.run([*pip, str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=300)


def test_core_install_has_no_heavy_dependency(core_venv: Path, tmp_path: Path) -> None:
    code = ("import importlib.util as u; "
            "print([m for m in ('torch', 'mediapipe', 'cv2', 'matplotlib', 'tensorboard', 'transformers', 'ray') "
            "if u.find_spec(m)])")
    proc = _run(core_venv, "python", "-c", code, cwd=tmp_path)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_core_install_runs_mock_shard_validate_stats(core_venv: Path, tmp_path: Path) -> None:
    for args in (("sldata", "mock", "--quiet"),
                 ("sldata", "shard", "--size", "2", "--quiet"),
                 ("sldata", "validate", "mock_data_multi/"),
                 ("sldata", "validate", "mock_data_multi/", "--deep"),
                 ("sldata", "stats", "mock_data_multi/", "--json"),
                 ("sldata", "upgrade-annotations", "mock_data/annotation.train.json", "-o", "a.json")):
        proc = _run(core_venv, *args, cwd=tmp_path)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, extra", [
    (("sltrain", "pretrain", str(ROOT / "configs" / "dpc_smoke_cpu.yaml")), "train"),
    (("sldata", "stats", "mock_data/", "--plots", "plots"), "look"),
    (("sldata", "extract-pose", str(ROOT / "tests" / "data" / "astronaut.mp4"), "-o", "poses"), "extract"),
])
def test_a_command_whose_extra_is_missing_exits_2_naming_it(core_venv: Path, tmp_path: Path,
                                                           args: tuple[str, ...], extra: str) -> None:
    assert _run(core_venv, "sldata", "mock", "--quiet", cwd=tmp_path).returncode == 0
    proc = _run(core_venv, *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"pip install 'sldata[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr
