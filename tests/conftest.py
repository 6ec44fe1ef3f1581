"""Shared fixtures: every test makes its own data in tmp_path."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
import warnings
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


#: The console scripts of pyproject.toml: name -> module whose `app` it runs.
APPS = {"sldata": "cli.sldata_app", "sltrain": "cli.sltrain_app"}


def invoke_cli(*args: object, cwd: Path | None = None, timeout: float = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command in this process, as `run_cli` does in a new one, and return the same shape.

    Why: starting Python, typer, h5py (and torch for sltrain) costs ~1 s a call,
    which is most of a test that only checks an exit code, a message or an output
    file. What the real process gives the tests is kept:
    - exit codes: the app's own standalone `main` (typer's click) turns
      typer.Exit/SystemExit and usage errors into the code; the `user_errors`
      boundary runs unchanged (its `safe_streams` reconfigures the runner's
      streams, never pytest's);
    - stdout and stderr apart, decoded like `subprocess.run(text=True)`: strict
      UTF-8 (a byte that is not UTF-8 fails the test as it would there) and
      universal newlines; what is written to fds 1 and 2 (HDF5's C diagnostics,
      forked workers, child processes) is captured and appended;
    - a bug is loud: any other exception propagates out of here and fails the
      test with its traceback, it never becomes exit 1 (`catch_exceptions=False`);
    - cwd, env and sys.argv (lock holders record it) are set for the call, and
      the environment, warning filters, cwd and torch's thread count are
      restored afterwards, so no run leaks into the next test;
    - `timeout` is accepted for the same call shape; pytest-timeout enforces it.
    Keep `run_cli` where the process itself is the point: signals and kills,
    locks between processes, parent death, bytes argv, other users, full
    disks, forked pools holding MediaPipe/Ray/torch state, a blocked import.
    """
    global _INVOKING
    from typer.testing import CliRunner

    prog, argv = str(args[0]), [str(a) for a in args[1:]]
    runner = CliRunner()
    saved_env = dict(os.environ)
    torch = sys.modules.get("torch")  # sltrain sets its thread count: the next test gets this one's back
    threads = torch.get_num_threads() if torch is not None else None
    try:
        with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
            if cwd is not None:
                mp.chdir(cwd)
            for key, value in (env or {}).items():
                mp.setenv(key, str(value))
            mp.setattr(sys, "argv", [str(BIN / prog), *argv])
            with runner.isolation():  # rich's consoles are built on import: against a pipe-like stream, as there
                app = importlib.import_module(APPS[prog]).app
            with _fds_captured() as fds:
                _INVOKING = True
                result = runner.invoke(app, argv, prog_name=prog, catch_exceptions=False)
    finally:
        _INVOKING = False
        os.environ.clear()
        os.environ.update(saved_env)
        if threads is not None:
            torch.set_num_threads(threads)
    return subprocess.CompletedProcess([prog, *argv], result.exit_code, _text(result.stdout_bytes + fds[0]),
                                       _text(result.stderr_bytes + fds[1]))


@contextlib.contextmanager
def _fds_captured() -> Iterator[list[bytes]]:
    """fds 1 and 2 go to temporary files for the block; their bytes are in the yielded list afterwards."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]  # noqa: SIM115 (closed below)
    captured: list[bytes] = []
    os.dup2(files[0].fileno(), 1)
    os.dup2(files[1].fileno(), 2)
    try:
        yield captured
    finally:
        for fd, old, file in zip((1, 2), saved, files):
            os.dup2(old, fd)
            os.close(old)
            file.seek(0)
            captured.append(file.read())
            file.close()


_INVOKING = False


def _std_streams_on_fds() -> None:
    """In a worker forked during `invoke_cli`: print to fds 1 and 2, as a forked worker of the real process does.

    The runner's sys.stdout/sys.stderr are in-memory buffers whose copies in the
    child are lost; on the fds (which the runner captures) a worker's traceback
    reaches stderr and `assert_no_traceback`.
    """
    if _INVOKING:
        sys.stdout = open(1, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115 (the child's exit flushes it)
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115


os.register_at_fork(after_in_child=_std_streams_on_fds)


def _text(data: bytes) -> str:
    """Bytes as `subprocess.run(text=True)` decodes them: strict UTF-8, universal newlines."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


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
