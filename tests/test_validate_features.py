"""validate on v1/v2 feature datasets: every finding from a real corrupted file."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from sldata.features import metadata_path, shard_path, v1_path
from sldata.findings import Finding, Report
from sldata.mock import write_mock
from sldata.validate import validate
from sldata import scan as scan_mod

REPS = ["dino", "pose"]


def make(tmp_path: Path, layout: str, **kw) -> Path:
    root = tmp_path / layout
    args = dict(layout=layout, videos=3, clips=12, reps=REPS, seed=1, shard_size=2, min_frames=4, max_frames=9)
    args.update(kw)
    write_mock(root, **args)
    return root


def ann(root: Path, split: str = "train") -> dict:
    return json.loads((root / f"annotation.{split}.json").read_text())


def put_ann(root: Path, data: dict, split: str = "train") -> None:
    (root / f"annotation.{split}.json").write_text(json.dumps(data))


def meta(root: Path, rep: str, split: str = "train") -> dict:
    return json.loads(metadata_path(root, rep, split).read_text())


def only(report: Report, code: str) -> list[Finding]:
    return [f for f in report.findings if f.code == code]


def one(report: Report, code: str) -> Finding:
    fs = only(report, code)
    assert len(fs) == 1, (code, report.findings)
    return fs[0]


def where(f: Finding) -> tuple:
    return (f.severity, Path(f.file).name if f.file else None, f.rep, f.video, f.clip)


@pytest.mark.parametrize("layout", ["v1", "v2"])
@pytest.mark.parametrize("deep", [False, True])
def test_clean_mock_is_valid_with_no_warnings(tmp_path: Path, layout: str, deep: bool) -> None:
    root = make(tmp_path, layout, reps=None, videos=4)
    r = validate(root, deep=deep)
    assert r.layout == layout and r.ok and r.findings == []
    assert r.stats["videos"] == 8 and r.stats["clips"] == 96 and r.stats["datasets"] == 96 * 4
    assert r.stats["splits"] == ["dev", "train"] and r.stats["reps"] == ["dino", "mae", "pose", "sign2vec"]


def test_truncated_shard_is_unreadable_and_the_rest_still_checked(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    shard = shard_path(root, "dino", "train", 0)
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with h5py.File(shard_path(root, "pose", "dev", 1), "a") as f:  # an unrelated problem elsewhere
        v = next(iter(f))
        del f[v]["5"]
    r = validate(root)
    f = one(r, "h5-unreadable")
    assert where(f) == ("error", "dino.train.0.h5", "dino", None, None) and "cannot open" in f.message
    c = one(r, "clip-missing")
    assert where(c) == ("error", "pose.dev.1.h5", "pose", v, "5")
    # the videos of the broken shard are not reported again as missing
    assert only(r, "video-missing") == [] and only(r, "metadata-mismatch") == []


def test_deleted_clip_and_video(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    videos = list(ann(root))
    with h5py.File(v1_path(root, "pose", "train"), "a") as f:
        del f[videos[0]]["11"]
        del f[videos[2]]
    r = validate(root)
    assert where(one(r, "clip-missing")) == ("error", "pose.train.h5", "pose", videos[0], "11")
    assert where(one(r, "video-missing")) == ("error", "pose.train.h5", "pose", videos[2], None)
    assert not r.ok


def test_bad_dtype_bad_shapes_and_dimension_outliers(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    videos = list(ann(root))
    path = shard_path(root, "dino", "train", 0)
    with h5py.File(path, "a") as f:
        g = f[videos[0]]
        del g["0"], g["1"], g["2"], g["3"]
        g["0"] = np.arange(20, dtype=np.int32).reshape(5, 4 * 1)[:, :1].repeat(384, 1)  # int, right shape
        g["1"] = np.zeros((2, 3, 384), np.float16)  # 3-D
        g["2"] = np.zeros((0, 384), np.float16)  # T == 0
        g["3"] = np.zeros((5, 100), np.float16)  # D differs from the rest of dino
    r = validate(root)
    assert where(one(r, "bad-dtype")) == ("error", "dino.train.0.h5", "dino", videos[0], "0")
    assert "int32" in one(r, "bad-dtype").message
    shapes = {f.clip: f for f in only(r, "bad-shape")}
    assert set(shapes) == {"1", "2", "3"}
    assert all(where(f)[:4] == ("error", "dino.train.0.h5", "dino", videos[0]) for f in shapes.values())
    assert "2-D" in shapes["1"].message and "T == 0" in shapes["2"].message
    assert "D=100" in shapes["3"].message and "D=384" in shapes["3"].message


def test_non_finite_only_with_deep(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    v = list(ann(root, "dev"))[1]
    with h5py.File(v1_path(root, "dino", "dev"), "a") as f:
        a = f[v]["7"][()]
        a[0, 0], a[1, 2] = np.nan, np.inf
        f[v]["7"][...] = a
    assert validate(root).findings == []
    r = validate(root, deep=True)
    f = one(r, "non-finite")
    assert where(f) == ("error", "dino.dev.h5", "dino", v, "7") and f.message.startswith("2 NaN/Inf")


def test_unreadable_dataset_data_found_by_deep(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    v = list(ann(root))[0]
    path = v1_path(root, "pose", "train")
    with h5py.File(path, "a") as f:
        del f[v]["4"]
        f[v].create_dataset("4", data=np.ones((9, 32), np.float16), chunks=(9, 32), compression="gzip")
        off = f[v]["4"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as fh:  # scribble over the compressed chunk
        fh.seek(off)
        fh.write(b"\xff" * 16)
    assert validate(root).ok
    r = validate(root, deep=True)
    f = one(r, "h5-unreadable")
    assert where(f) == ("error", "pose.train.h5", "pose", v, "4") and "cannot read data" in f.message


def test_metadata_pointing_to_the_wrong_shard(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    m = meta(root, "pose")
    v = next(k for k, s in m.items() if s == 0)
    m[v] = 1
    metadata_path(root, "pose", "train").write_text(json.dumps(m))
    r = validate(root)
    fs = sorted(only(r, "metadata-mismatch"), key=lambda f: f.file)
    assert [where(f) for f in fs] == [("error", "metadata_pose.train.json", "pose", v, None),
                                      ("error", "pose.train.0.h5", "pose", v, None)]
    assert "points to shard 1" in fs[0].message and "(it is in shard 0)" in fs[0].message
    assert only(r, "video-missing") == []


def test_video_in_two_shards(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    m = meta(root, "dino")
    v = next(k for k, s in m.items() if s == 0)
    with h5py.File(shard_path(root, "dino", "train", 0), "r") as src, \
            h5py.File(shard_path(root, "dino", "train", 1), "a") as dst:
        src.copy(src[v], dst, name=v)
    r = validate(root)
    f = one(r, "duplicate-video")
    assert where(f) == ("error", "dino.train.1.h5", "dino", v, None) and "shards 0, 1" in f.message
    assert where(one(r, "metadata-mismatch")) == ("error", "dino.train.1.h5", "dino", v, None)


def test_clip_order_text_sorted_and_mismatched(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    a = ann(root)
    v0, v1, v2 = list(a)
    a[v0]["clip_order"] = sorted(a[v0]["clip_order"])  # "10" before "2"
    a[v1]["clip_order"] = a[v1]["clip_order"][:-1] + ["99"]  # one missing, one unknown
    a[v2]["clip_order"] = a[v2]["clip_order"] + ["0"]  # duplicate
    put_ann(root, a)
    r = validate(root)
    u = one(r, "clip-order-unnatural")
    assert where(u) == ("warning", "annotation.train.json", None, v0, None)
    ms = {f.video: f for f in only(r, "clip-order-mismatch")}
    assert set(ms) == {v1, v2} and all(f.severity == "error" for f in ms.values())
    assert "missing 11" in ms[v1].message and "unknown 99" in ms[v1].message and "repeats 0" in ms[v2].message


def test_placeholder_texts_including_bare_nan(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    a = ann(root)
    v = list(a)[0]
    a[v]["0"]["translation"] = ""
    a[v]["1"]["translation"] = "<none>"
    a[v]["2"]["translation"] = "__NAN__"
    a[v]["3"]["paraphrases"] = ["fine", "<none>"]
    text = json.dumps(a).replace('"__NAN__"', "NaN")  # what pandas/json.dump write
    (root / "annotation.train.json").write_text(text)
    r = validate(root)
    fs = {(f.clip, f.message) for f in only(r, "text-placeholder")}
    assert fs == {("0", "translation is ''"), ("1", "translation is '<none>'"), ("2", "translation is NaN"),
                  ("3", "paraphrases[1] is '<none>'")}
    assert all(where(f)[:4] == ("warning", "annotation.train.json", None, v) for f in only(r, "text-placeholder"))
    assert r.ok  # warnings only


def test_split_overlap(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    a, d = ann(root), ann(root, "dev")
    v = list(a)[1]
    d[v] = a[v]
    put_ann(root, d, "dev")
    r = validate(root)
    f = one(r, "split-overlap")
    assert where(f) == ("warning", "annotation.train.json", None, v, None) and "'dev'" in f.message
    # and the dev reps do not hold it
    assert {(x.rep, x.video) for x in only(r, "video-missing")} == {("dino", v), ("pose", v)}


def test_invalid_json_annotation_and_metadata(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    (root / "annotation.dev.json").write_text('{"abc": {"clip_order": [')
    metadata_path(root, "dino", "train").write_text("{not json")
    r = validate(root)
    fs = {Path(f.file).name: f for f in only(r, "json-invalid")}
    assert set(fs) == {"annotation.dev.json", "metadata_dino.train.json"}
    assert fs["metadata_dino.train.json"].rep == "dino" and all(f.severity == "error" for f in fs.values())
    # the shards of dino/train are still cross-checked against the annotation
    assert only(r, "video-missing") == [] and only(r, "extra-video") == []


def test_schema_violation_is_located(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    a = ann(root)
    v = list(a)[2]
    a[v]["3"]["translation"] = 42
    del a[v]["4"]["translation"]
    put_ann(root, a)
    m = meta(root, "pose")
    m[v] = "two"
    metadata_path(root, "pose", "train").write_text(json.dumps(m))
    r = validate(root)
    fs = only(r, "schema")
    by_file = {}
    for f in fs:
        by_file.setdefault(Path(f.file).name, []).append(f)
    ann_fs = sorted(by_file["annotation.train.json"], key=lambda f: f.clip)
    assert [(f.video, f.clip) for f in ann_fs] == [(v, "3"), (v, "4")]
    assert ann_fs[0].message.startswith(f"{v}.3.translation:") and ann_fs[1].message.startswith(f"{v}.4.translation:")
    (mf,) = by_file["metadata_pose.train.json"]
    assert (mf.rep, mf.video, mf.severity) == ("pose", v, "error") and "two" in mf.message


def test_missing_metadata_shard_and_rep_file(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    metadata_path(root, "dino", "dev").unlink()
    shard_path(root, "pose", "train", 1).unlink()
    r = validate(root)
    fs = {Path(f.file).name: f for f in only(r, "missing-file")}
    assert set(fs) == {"metadata_dino.dev.json", "pose.train.1.h5"}
    assert where(fs["pose.train.1.h5"]) == ("error", "pose.train.1.h5", "pose", None, None)
    assert "named by the metadata" in fs["pose.train.1.h5"].message
    assert fs["metadata_dino.dev.json"].rep == "dino"
    assert only(r, "video-missing") == []  # the videos of the absent shard are covered by missing-file

    v1 = make(tmp_path, "v1")
    v1_path(v1, "pose", "dev").unlink()
    r = validate(v1)
    assert where(one(r, "missing-file")) == ("error", "pose.dev.h5", "pose", None, None)


def test_annotations_without_any_feature_file(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    for p in root.glob("*.h5"):
        p.unlink()
    r = validate(root)
    f = one(r, "missing-file")
    assert r.layout == "v1" and f.file == str(root) and "no feature files" in f.message


def test_extra_video_and_structure(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    with h5py.File(v1_path(root, "dino", "train"), "a") as f:
        f.create_group("stranger").create_dataset("0", data=np.zeros((4, 384), np.float16))
        f.create_dataset("loose", data=np.zeros((4, 384), np.float16))
    r = validate(root)
    assert where(one(r, "extra-video")) == ("warning", "dino.train.h5", "dino", "stranger", None)
    assert where(one(r, "h5-structure")) == ("error", "dino.train.h5", "dino", "loose", None)


def test_nonnumeric_v1_clip_keys_warned(tmp_path: Path) -> None:
    root = make(tmp_path, "v1", reps=["pose"])
    a = ann(root)
    v = list(a)[0]
    a[v]["clip1"] = a[v].pop("1")
    put_ann(root, a)
    with h5py.File(v1_path(root, "pose", "train"), "a") as f:
        f[v].move("1", "clip1")
    r = validate(root)
    assert [f.code for f in r.findings] == ["clip-key-nonnumeric"]
    assert where(r.findings[0]) == ("warning", "annotation.train.json", None, v, None)


def test_v1_annotation_in_v2_dataset_is_schema_error(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    a = {v: {k: c for k, c in e.items() if k != "clip_order"} for v, e in ann(root).items()}
    put_ann(root, a)
    f = one(validate(root), "schema")
    assert "upgrade-annotations" in f.message and f.video is None


def test_split_option_restricts(tmp_path: Path) -> None:
    root = make(tmp_path, "v1")
    with h5py.File(v1_path(root, "dino", "dev"), "a") as f:
        del f[next(iter(f))]["0"]
    assert not validate(root).ok
    r = validate(root, split="train")
    assert r.ok and r.stats["splits"] == ["train"] and r.stats["h5_files"] == 2


def test_pool_gives_the_same_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make(tmp_path, "v2", videos=5)
    videos = list(ann(root))
    with h5py.File(shard_path(root, "pose", "train", 2), "a") as f:
        del f[videos[4]]["3"]
    p = shard_path(root, "dino", "dev", 1)
    p.write_bytes(p.read_bytes()[:100])
    seq = validate(root, deep=True, workers=1)
    monkeypatch.setattr(scan_mod, "POOL_MIN_BYTES", 0)
    par = validate(root, deep=True, workers=2)
    assert par.stats["workers"] == 2 and seq.stats["workers"] == 1
    key = lambda f: (f.code, f.file, f.video or "", f.clip or "")  # noqa: E731
    assert sorted(map(key, par.findings)) == sorted(map(key, seq.findings))
    assert {f.code for f in par.findings} == {"clip-missing", "h5-unreadable"}
    assert par.stats["datasets"] == seq.stats["datasets"]


def _scan_or_die(path: str, *args: Any) -> Any:
    """scan_feature_file, but the worker scanning $DOOMED_H5 is killed (a native crash inside HDF5, say)."""
    if path == os.environ.get("DOOMED_H5"):
        os.kill(os.getpid(), signal.SIGKILL)
    return scan_mod.scan_feature_file(path, *args)


def test_a_worker_killed_while_scanning_is_that_files_finding(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose scan kills its worker twice (a native crash) is h5-unreadable; the rest is checked."""
    from sldata.validate import features as vf

    root = make(tmp_path, "v2", videos=5)
    doomed = str(shard_path(root, "pose", "train", 1))
    monkeypatch.setenv("DOOMED_H5", doomed)  # forked or spawned, the workers see it
    monkeypatch.setattr(vf, "scan_feature_file", _scan_or_die)
    monkeypatch.setattr(scan_mod, "POOL_MIN_BYTES", 0)
    r = validate(root, workers=2)
    assert r.stats["workers"] == 2
    crashed = [f for f in r.errors if f.code == "h5-unreadable"]
    assert [(f.file, f.rep) for f in crashed] == [(doomed, "pose")]
    assert crashed[0].message.startswith("reading crashed the worker (worker process died on each of 2 attempts "
                                         "(killed by SIGKILL)")
    assert {f.code for f in r.errors} == {"h5-unreadable"}  # its videos are not reported missing too


def test_validate_never_modifies_input(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    validate(root, deep=True)
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}
    assert before == after and os.listdir(root) == os.listdir(root)


def test_string_shard_indices_are_valid(tmp_path: Path) -> None:
    root = make(tmp_path, "v2")
    m = meta(root, "dino")
    metadata_path(root, "dino", "train").write_text(json.dumps({k: str(v) for k, v in m.items()}))
    assert validate(root).findings == []


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_clip_ids_gap_warned_for_v1_keys_only(tmp_path: Path, layout: str) -> None:
    root = make(tmp_path, layout, reps=["pose"])
    a = ann(root)
    v = list(a)[0]
    del a[v]["3"]  # a gap: 0, 1, 2, 4, ..., 11
    if layout == "v2":
        a[v]["clip_order"].remove("3")
    put_ann(root, a)
    files = [v1_path(root, "pose", "train")] if layout == "v1" else sorted((root / "pose").glob("pose.train.*.h5"))
    for path in files:
        with h5py.File(path, "a") as f:
            if v in f:
                del f[v]["3"]
    r = validate(root)
    if layout == "v2":  # clip_order names the clips: no lookup by position
        assert r.findings == []
        return
    assert [f.code for f in r.findings] == ["clip-ids-gap"]
    f = r.findings[0]
    assert where(f) == ("warning", "annotation.train.json", None, v, None)
    assert "missing 3" in f.message and "found instead 11" in f.message
