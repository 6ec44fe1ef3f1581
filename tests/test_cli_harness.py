"""`invoke_cli` (a command in this process) answers as `run_cli` (a real process) does, and never hides a bug."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from .conftest import invoke_cli, run_cli


def _cases(tmp_path: Path, mock_v1: Path) -> list[tuple]:
    ann = tmp_path / "annotation.train.json"
    ann.write_text(json.dumps({"vid": {"0": {"start": 0, "end": 4, "translation": "hello"}}}))
    return [
        ("sldata", "validate", mock_v1),                                 # exit 0, a summary table
        ("sldata", "validate", mock_v1, "--json"),                       # print_json on the binary stream
        ("sldata", "validate", tmp_path / "missing"),                    # UserError: exit 2, one line
        ("sldata", "shard", mock_v1, tmp_path / "x", "--compression", "zstd"),  # a bad option value
        ("sldata", "shard", "--no-such-flag"),                           # click's usage error: exit 2
        ("sldata", "upgrade-annotations", ann, "-o", tmp_path / "up.json", "--json"),
        ("sldata", "render", tmp_path / "caf\udce9.h5", "clip", "-o", tmp_path / "o.png"),  # a name that is not UTF-8
        ("sldata", "--help"),
        ("sltrain", "pretrain", tmp_path / "absent.yaml"),
    ]


def test_in_process_run_matches_the_real_process(tmp_path: Path, mock_v1: Path) -> None:
    for args in _cases(tmp_path, mock_v1):
        real = run_cli(*args, cwd=tmp_path)
        (tmp_path / "up.json").unlink(missing_ok=True)
        here = invoke_cli(*args, cwd=tmp_path)
        (tmp_path / "up.json").unlink(missing_ok=True)
        assert (here.returncode, here.stdout, here.stderr) == (real.returncode, real.stdout, real.stderr), args


def test_a_bug_inside_fails_loudly_and_state_is_restored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("a bug in the command")

    stdout, stderr, cwd, errors = sys.stdout, sys.stderr, os.getcwd(), sys.stdout.errors
    assert invoke_cli("sldata", "validate", tmp_path / "missing").returncode == 2  # imports the app as invoke_cli does
    import cli.common

    monkeypatch.setattr(cli.common, "safe_streams", broken)  # the first thing every command's boundary runs
    with pytest.raises(RuntimeError, match="a bug in the command"):
        invoke_cli("sldata", "validate", tmp_path, cwd=tmp_path, env={"SLDATA_HARNESS_PROBE": "1"})
    assert (sys.stdout, sys.stderr, os.getcwd(), sys.stdout.errors) == (stdout, stderr, cwd, errors)
    assert "SLDATA_HARNESS_PROBE" not in os.environ
    monkeypatch.undo()
    proc = invoke_cli("sldata", "validate", tmp_path / "missing")  # the boundary reconfigures the runner's streams only
    assert proc.returncode == 2 and sys.stdout.errors == errors
