"""`sldata validate` as a user runs it: exit codes 0/1/2, --json shape, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from sldata.features import v1_path
from sldata.pose import PoseH5Writer, PoseSample

from .conftest import assert_no_traceback, invoke_cli

KEYS = {"ok", "layout", "errors", "warnings", "stats"}
FINDING_KEYS = ["code", "severity", "file", "video", "clip", "rep", "message"]


def test_clean_datasets_exit_0(mock_v1: Path, mock_v2: Path) -> None:
    for root, layout in ((mock_v1, "v1"), (mock_v2, "v2")):
        p = invoke_cli("sldata", "validate", root)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"{layout} — valid" in p.stdout and "0 error(s), 0 warning(s)" in p.stdout
        assert "splits dev, train" in p.stdout and "reps dino, mae, pose, sign2vec" in p.stdout
    p = invoke_cli("sldata", "validate", mock_v2, "--json", "--deep")
    assert p.returncode == 0
    rep = json.loads(p.stdout)
    assert set(rep) == KEYS and rep["ok"] is True and rep["layout"] == "v2"
    assert rep["errors"] == [] and rep["warnings"] == [] and rep["stats"]["clips"] == 72


def test_errors_exit_1_warnings_exit_0(mock_v1: Path) -> None:
    ann = mock_v1 / "annotation.train.json"
    data = json.loads(ann.read_text())
    v = list(data)[0]
    data[v]["2"]["translation"] = "<none>"
    ann.write_text(json.dumps(data))
    p = invoke_cli("sldata", "validate", mock_v1, "--json")
    rep = json.loads(p.stdout)
    assert p.returncode == 0 and rep["ok"] is True and [w["code"] for w in rep["warnings"]] == ["text-placeholder"]
    assert list(rep["warnings"][0]) == FINDING_KEYS
    assert rep["warnings"][0]["video"] == v and rep["warnings"][0]["clip"] == "2"

    with h5py.File(v1_path(mock_v1, "mae", "dev"), "a") as f:
        vids = list(f)
        for vid in vids:
            del f[vid]["0"], f[vid]["1"]
    p = invoke_cli("sldata", "validate", mock_v1)
    assert p.returncode == 1 and "INVALID" in p.stdout
    assert "clip-missing" in p.stdout and f"... and {2 * len(vids) - 3} more" in p.stdout  # grouped, not listed
    assert "text-placeholder" in p.stdout
    assert_no_traceback(p)
    p = invoke_cli("sldata", "validate", mock_v1, "--json")
    rep = json.loads(p.stdout)
    assert p.returncode == 1 and rep["ok"] is False
    assert [(e["code"], e["rep"], e["clip"]) for e in rep["errors"]] == [("clip-missing", "mae", "0"),
                                                                         ("clip-missing", "mae", "1")] * len(vids)
    # --split train leaves the broken dev split out
    assert invoke_cli("sldata", "validate", mock_v1, "--split", "train").returncode == 0


def test_bad_usage_exit_2_without_traceback(tmp_path: Path, mock_v1: Path) -> None:
    p = invoke_cli("sldata", "validate", tmp_path / "missing")
    assert p.returncode == 2 and "no such file or directory" in p.stderr
    assert_no_traceback(p)
    (tmp_path / "empty").mkdir()
    p = invoke_cli("sldata", "validate", tmp_path / "empty")
    assert p.returncode == 2 and "empty directory" in p.stderr
    assert_no_traceback(p)
    p = invoke_cli("sldata", "validate", mock_v1, "--split", "test")
    assert p.returncode == 2 and "no split 'test'" in p.stderr
    assert_no_traceback(p)
    p = invoke_cli("sldata", "validate", mock_v1, "--labels", tmp_path / "labels.train.csv")
    assert p.returncode == 2 and "pose h5" in p.stderr
    assert_no_traceback(p)


def test_unknown_layout_exit_2_still_reports_json(tmp_path: Path) -> None:
    d = tmp_path / "stuff"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    p = invoke_cli("sldata", "validate", d, "--json")
    assert p.returncode == 2
    assert_no_traceback(p)
    rep = json.loads(p.stdout)
    assert rep["layout"] == "unknown" and rep["ok"] is False and [e["code"] for e in rep["errors"]] == ["unknown-layout"]
    p = invoke_cli("sldata", "validate", d / "notes.txt")
    assert p.returncode == 2 and "unknown-layout" in p.stdout
    assert_no_traceback(p)


def test_pose_with_labels_cli(tmp_path: Path) -> None:
    h5 = tmp_path / "poses.h5"
    rng = np.random.default_rng(0)
    with PoseH5Writer(h5) as w:
        for k in ("a", "b", "c"):
            w.add(k, PoseSample(rng.random((4, 75, 3), dtype=np.float32), rng.random((4, 75), dtype=np.float32)))
    (tmp_path / "labels.train.csv").write_text("key,label\na,HELLO\nb,BYE\n")
    (tmp_path / "labels.test.csv").write_text("key,label\nc,HELLO\n")
    p = invoke_cli("sldata", "validate", h5, "--labels", tmp_path / "labels.train.csv",
                "--labels", tmp_path / "labels.test.csv")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pose-h5 — valid" in p.stdout and "3 of 3 keys labeled" in p.stdout and "2 train classes" in p.stdout
    (tmp_path / "labels.test.csv").write_text("key,label\nc,HELLO\nzzz,HELLO\n")
    p = invoke_cli("sldata", "validate", h5, "--json", "--labels", tmp_path / "labels.test.csv")
    rep = json.loads(p.stdout)
    assert p.returncode == 1 and [e["code"] for e in rep["errors"]] == ["labels-unknown-key"]
    assert rep["errors"][0]["video"] == "zzz"
    assert sorted(w["video"] for w in rep["warnings"]) == ["a", "b"]
