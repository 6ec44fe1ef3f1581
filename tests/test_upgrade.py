"""`sldata upgrade-annotations`: v1 → v2 with numeric clip_order, verbatim entries, idempotent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sldata.errors import UserError
from sldata.upgrade import default_upgrade_output, upgrade_annotation, upgrade_annotation_file

from .conftest import assert_no_traceback, invoke_cli


def _clip(i: int) -> dict:
    # extra fields in an unusual order, nested values: all must survive verbatim
    return {"keywords": [f"K{i}", "BOOK"], "translation": f"sentence {i}.", "paraphrases": [f"p {i}"],
            "start": i * 1.25, "meta": {"signer": 3, "ok": True, "score": None}}


def _v1(n_clips: int = 13) -> dict:
    # clip keys deliberately in shuffled text order ("10" before "2")
    keys = sorted((str(i) for i in range(n_clips)), key=str)
    return {"vidB": {k: _clip(int(k)) for k in keys}, "vidA": {k: _clip(int(k) + 100) for k in reversed(keys)}}


def test_numeric_clip_order_with_13_clips_and_verbatim_entries() -> None:
    raw = _v1(13)
    new, report = upgrade_annotation(raw)
    assert list(new) == ["vidB", "vidA"]  # video order preserved, not sorted
    for video in new:
        assert new[video]["clip_order"] == [str(i) for i in range(13)]
        assert list(new[video])[0] == "clip_order"
        assert list(new[video])[1:] == list(raw[video])  # clip entries in their original key order
        for clip, entry in raw[video].items():
            assert new[video][clip] == entry and list(new[video][clip]) == list(entry)
    assert report.version_in == 1 and report.changed and report.upgraded_videos == 2
    assert report.videos == 2 and report.clips == 26 and report.nonnumeric == {}


def test_idempotent_on_v2_in_memory_and_on_disk(tmp_path: Path) -> None:
    once, _ = upgrade_annotation(_v1())
    twice, report = upgrade_annotation(once)
    assert twice == once and not report.changed and report.version_in == 2
    src = tmp_path / "annotation.train.json"
    src.write_text(json.dumps(_v1()))
    r1 = upgrade_annotation_file(src)
    out1 = Path(r1.output)
    r2 = upgrade_annotation_file(out1, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == out1.read_bytes()
    assert r1.changed and not r2.changed


def test_non_integer_keys_sorted_naturally_and_reported(tmp_path: Path) -> None:
    raw = {"v": {k: _clip(0) for k in ["clip10", "clip2", "3", "clip1", "10", "intro"]}}
    new, report = upgrade_annotation(raw)
    assert new["v"]["clip_order"] == ["3", "10", "clip1", "clip2", "clip10", "intro"]
    assert report.nonnumeric == {"v": ["clip10", "clip2", "clip1", "intro"]}
    src = tmp_path / "annotation.dev.json"
    src.write_text(json.dumps(raw))
    proc = invoke_cli("sldata", "upgrade-annotations", src)
    assert proc.returncode == 0, proc.stderr
    assert "non-integer clip keys" in proc.stdout and "clip10" in proc.stdout
    proc = invoke_cli("sldata", "upgrade-annotations", src, "-o", tmp_path / "x.json", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["nonnumeric_clip_keys"] == {"v": ["clip10", "clip2", "clip1", "intro"]}


def test_mixed_file_is_completed_and_nan_text_kept(tmp_path: Path) -> None:
    raw = {"old": {"1": _clip(1), "0": _clip(0)},
           "new": {"clip_order": ["b", "a"], "a": _clip(5), "b": _clip(6)}}
    raw["old"]["0"]["translation"] = math.nan
    src = tmp_path / "annotation.train.json"
    src.write_text(json.dumps(raw))  # writes a bare NaN, as pandas-made files do
    report = upgrade_annotation_file(src)
    out = json.loads(Path(report.output).read_text())
    assert out["old"]["clip_order"] == ["0", "1"]
    assert out["new"]["clip_order"] == ["b", "a"]  # a v2 video is never reordered
    assert math.isnan(out["old"]["0"]["translation"])
    assert report.upgraded_videos == 1


def test_cli_default_output_beside_input_never_over_it(tmp_path: Path) -> None:
    src = tmp_path / "annotation.train.json"
    src.write_text(json.dumps(_v1()))
    before = src.read_bytes()
    proc = invoke_cli("sldata", "upgrade-annotations", src)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "annotation.train.v2.json"
    assert default_upgrade_output(src) == out
    assert json.loads(out.read_text())["vidA"]["clip_order"][-1] == "12"
    assert src.read_bytes() == before
    assert "annotation.train.v2.json" in proc.stdout
    # the new name is not taken for a split of the dataset directory
    from sldata.features import detect_layout

    assert detect_layout(tmp_path).splits == ["train"]
    # an existing OUT is refused (exit 2), replaced with --overwrite, and IN can never be OUT
    out.write_text("{}")
    proc = invoke_cli("sldata", "upgrade-annotations", src)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr and out.read_text() == "{}"
    assert_no_traceback(proc)
    proc = invoke_cli("sldata", "upgrade-annotations", src, "--overwrite")
    assert proc.returncode == 0 and "clip_order" in out.read_text()
    proc = invoke_cli("sldata", "upgrade-annotations", src, "-o", src, "--overwrite")
    assert proc.returncode == 2 and src.read_bytes() == before
    assert_no_traceback(proc)
    assert not list(tmp_path.glob("*sldata-tmp*"))


@pytest.mark.parametrize("text, where", [
    ('{"v": {"0": {"translation": "a"}', "invalid JSON"),
    ('{"v": {"0": {"paraphrases": []}}}', "v.0.translation"),
    ('{"v": {"0": {"translation": 3}}}', "v.0.translation"),
    ('{"v": ["not", "clips"]}', "v: expected an object of clips"),
    ('[1, 2]', "<root>"),
    ('{"v": {"clip_order": ["0", "1"], "0": {"translation": "a"}}}', "v.clip_order"),
])
def test_bad_input_exit_2_with_located_message(tmp_path: Path, text: str, where: str) -> None:
    src = tmp_path / "annotation.train.json"
    src.write_text(text)
    proc = invoke_cli("sldata", "upgrade-annotations", src)
    assert proc.returncode == 2, proc.stdout
    assert_no_traceback(proc)
    assert where in proc.stderr and str(src.name) in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotation.train.json"]


def test_missing_input_is_exit_2(tmp_path: Path) -> None:
    proc = invoke_cli("sldata", "upgrade-annotations", tmp_path / "nope.json")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    assert_no_traceback(proc)
    with pytest.raises(UserError):
        upgrade_annotation_file(tmp_path / "nope.json")


@pytest.mark.parametrize("arg", [".", "..", "sub"])
def test_directory_input_is_exit_2(tmp_path: Path, arg: str) -> None:
    (tmp_path / "sub").mkdir()
    proc = invoke_cli("sldata", "upgrade-annotations", arg, cwd=tmp_path / "sub" if arg != "sub" else tmp_path)
    assert_no_traceback(proc)
    assert proc.returncode == 2 and "is a directory" in proc.stderr, proc.stderr


def test_output_name_that_looks_like_markup_prints_plainly(tmp_path: Path) -> None:
    src = tmp_path / "annotation.train.json"
    src.write_text(json.dumps({"v": {"1": {"translation": "b"}, "0": {"translation": "a"}}}))
    out = tmp_path / "[/]o.json"
    proc = invoke_cli("sldata", "upgrade-annotations", src, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert "[/]o.json" in proc.stdout
    assert json.loads(out.read_text())["v"]["clip_order"] == ["0", "1"]
