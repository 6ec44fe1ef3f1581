"""Shared fixtures: every test makes its own data in tmp_path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a console script as a user would (a real process, real exit code)."""
    exe = BIN / args[0]
    cmd = [str(exe), *map(str, args[1:])]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real tmpfs of `size` mounted at `path` (disk-full tests); skipped where mounting is not permitted.

    Always unmounted afterwards (lazily, so a file still open cannot keep it).
    """
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip() or 'mount failed'}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def assert_no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


@pytest.fixture
def mock_v1(tmp_path: Path) -> Path:
    from sldata.mock import write_mock

    out = tmp_path / "mock_data"
    write_mock(out, layout="v1", videos=3, clips=12, seed=1)
    return out


@pytest.fixture
def mock_v2(tmp_path: Path) -> Path:
    from sldata.mock import write_mock

    out = tmp_path / "mock_data_multi"
    write_mock(out, layout="v2", videos=3, clips=12, seed=1, shard_size=2)
    return out
