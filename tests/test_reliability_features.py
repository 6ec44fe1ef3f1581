"""Issue 13 for the feature-dataset commands: mock, upgrade-annotations, shard, validate, stats.

Real files, real processes: a real tmpfs for a full disk, a real unprivileged user
(setpriv) for permissions, kill -9 for interrupted runs. Every case asserts the
exit code, the message, no traceback, and that the inputs are byte-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pytest

from sldata.io import TMP_MARK, is_temporary
from sldata.mock import write_mock

from .conftest import BIN, assert_no_traceback, invoke_cli, run_cli, tmpfs


# --- helpers ------------------------------------------------------------------------------

def tree_hash(root: Path) -> str:
    """Names and bytes of every file under `root` (or of one file)."""
    h = hashlib.sha256()
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*"))
    for p in paths:
        h.update(os.fsencode(p.relative_to(root.parent)))
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The command failed with `code`, printed one `error:` line holding every needle, no traceback."""
    assert_no_traceback(proc)
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def leftovers(parent: Path) -> list[str]:
    """Temporaries and lock files of this toolkit anywhere under `parent`."""
    return [str(p) for p in parent.rglob("*") if TMP_MARK in p.name or is_temporary(p)] if parent.exists() else []


def garble_clip(h5: Path) -> tuple[str, str]:
    """Rewrite clip "1" of the first video gzip-chunked, then overwrite bytes inside its first chunk."""
    with h5py.File(h5, "a") as f:
        video = sorted(f)[0]
        data = f[video]["1"][()]
        del f[video]["1"]
        f[video].create_dataset("1", data=data, chunks=(4, data.shape[1]), compression="gzip")
        info = f[video]["1"].id.get_chunk_info(0)
    with open(h5, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 3)
        fh.write(b"\xff" * 16 + b"\x00" * 16)
    return video, "1"


@pytest.fixture
def small_v1(tmp_path: Path) -> Path:
    out = tmp_path / "src"
    write_mock(out, layout="v1", videos=2, clips=3, seed=3)
    return out


# --- verbatim JSON ------------------------------------------------------------------------

def test_upgrade_keeps_big_integers_and_key_order(tmp_path: Path) -> None:
    src = tmp_path / "annotation.train.json"
    clip = {"translation": "a b", "z_big": 2**64 + 1, "paraphrases": [], "neg": -(2**80),
            "nested": {"id": 10**30, "b": [2**70, 1.5]}, "a_last": True}
    src.write_text(json.dumps({"vid2": {"1": clip, "0": dict(clip)}, "vid1": {"0": clip}}, indent=1))
    before = tree_hash(src)
    proc = invoke_cli("sldata", "upgrade-annotations", src, "-o", tmp_path / "out.json")
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    text = (tmp_path / "out.json").read_text()
    assert "18446744073709551617" in text and "-1208925819614629174706176" in text and "1" + "0" * 30 in text
    out = json.loads(text)
    assert list(out) == ["vid2", "vid1"]
    assert out["vid2"]["clip_order"] == ["0", "1"] and list(out["vid2"]) == ["clip_order", "1", "0"]
    for entry in (out["vid2"]["1"], out["vid2"]["0"], out["vid1"]["0"]):
        assert entry == clip and list(entry) == list(clip)  # values and key order, ints exact
        assert type(entry["z_big"]) is int and entry["nested"]["b"][0] == 2**70
    assert tree_hash(src) == before


# --- repeated keys ------------------------------------------------------------------------

def _dup_video(ann: dict) -> str:
    v0, v1 = list(ann)[:2]
    return "{" + f'"{v0}": {json.dumps(ann[v0])}, "{v0}": {json.dumps(ann[v1])}' + "}"


def _dup_clip(ann: dict) -> str:
    v0 = next(iter(ann))
    clips = ", ".join(f'"{k}": {json.dumps(c)}' for k, c in ann[v0].items())
    return "{" + f'"{v0}": {{{clips}, "0": {json.dumps(ann[v0]["0"])}}}' + "}"


@pytest.mark.parametrize("kind", ["video", "clip"])
def test_duplicate_key_in_annotation(small_v1: Path, tmp_path: Path, kind: str) -> None:
    path = small_v1 / "annotation.train.json"
    ann = json.loads(path.read_text())
    video = next(iter(ann))
    path.write_text(_dup_video(ann) if kind == "video" else _dup_clip(ann))
    before = tree_hash(small_v1)

    proc = invoke_cli("sldata", "validate", small_v1, "--json")
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc)
    dups = [e for e in json.loads(proc.stdout)["errors"] if e["code"] == "json-duplicate-key"]
    assert len(dups) == 1 and dups[0]["file"].endswith("annotation.train.json")
    assert dups[0]["video"] == video and dups[0]["clip"] == (None if kind == "video" else "0")
    assert (f"video id {video!r} occurs twice" if kind == "video"
            else f"clip key '0' occurs twice in video {video!r}") in dups[0]["message"]

    needle = f"video {video!r} occurs twice" if kind == "video" else f"clip key '0' occurs twice in video {video!r}"
    proc = invoke_cli("sldata", "upgrade-annotations", path, "-o", tmp_path / "up.json")
    one_line_error(proc, 1, "annotation.train.json", needle)
    assert not (tmp_path / "up.json").exists()
    proc = invoke_cli("sldata", "shard", small_v1, tmp_path / "dst", "--size", "1")
    one_line_error(proc, 1, "annotation.train.json", needle)
    assert not (tmp_path / "dst").exists() and not leftovers(tmp_path)
    assert tree_hash(small_v1) == before


def test_duplicate_key_in_v2_metadata(tmp_path: Path) -> None:
    src = tmp_path / "v2"
    write_mock(src, layout="v2", videos=3, clips=2, seed=4, shard_size=2)
    meta = src / "dino" / "metadata_dino.train.json"
    mapping = json.loads(meta.read_text())
    video = next(iter(mapping))
    meta.write_text(meta.read_text().rstrip().rstrip("}") + f', "{video}": 1}}')
    before = tree_hash(src)
    proc = invoke_cli("sldata", "validate", src, "--json")
    assert proc.returncode == 1 and not proc.stderr.strip()
    dups = [e for e in json.loads(proc.stdout)["errors"] if e["code"] == "json-duplicate-key"]
    assert [(d["video"], d["rep"]) for d in dups] == [(video, "dino")]
    proc = invoke_cli("sldata", "shard", src, tmp_path / "dst", "--size", "1")
    one_line_error(proc, 1, "metadata_dino.train.json", f"video {video!r} occurs twice in the metadata")
    assert not (tmp_path / "dst").exists() and not leftovers(tmp_path)
    assert tree_hash(src) == before


def test_json_nested_too_deeply(small_v1: Path, tmp_path: Path) -> None:
    path = small_v1 / "annotation.train.json"
    path.write_text('{"v": ' + "[" * 100_000 + "]" * 100_000 + "}")
    before = tree_hash(small_v1)
    proc = invoke_cli("sldata", "validate", small_v1, "--json")
    assert proc.returncode == 1
    assert_no_traceback(proc)
    bad = [e for e in json.loads(proc.stdout)["errors"] if e["code"] == "json-invalid"]
    assert bad and "nested too deeply" in bad[0]["message"]
    for args in (("upgrade-annotations", path, "-o", tmp_path / "o.json"),
                 ("shard", small_v1, tmp_path / "dst", "--size", "1"),
                 ("stats", small_v1)):
        one_line_error(invoke_cli("sldata", *args), 2, "annotation.train.json", "nested too deeply")
    assert not leftovers(tmp_path) and not (tmp_path / "dst").exists()
    assert tree_hash(small_v1) == before


# --- permissions (as an unprivileged user) ------------------------------------------------

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _as_nobody(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLCONFIGDIR": str(cwd / ".mpl"), "HOME": str(cwd)}
    return subprocess.run([*NOBODY, str(BIN / "sldata"), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.fixture
def world(small_v1: Path) -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is root-only), removed afterwards."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is missing: cannot run the CLI as an unprivileged user")
    probe = subprocess.run([*NOBODY, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot switch users here: {probe.stderr.decode().strip()}")
    root = Path(tempfile.mkdtemp(prefix="sldata-perm-"))
    try:
        root.chmod(0o777)
        shutil.copytree(small_v1, root / "v1")
        write_mock(root / "v2", layout="v2", videos=2, clips=2, seed=5, shard_size=1)
        (root / "ro").mkdir(mode=0o555)
        (root / "ro").chmod(0o555)
        subprocess.run(["chmod", "-R", "a+rX", str(root / "v1"), str(root / "v2")], check=True)
        yield root
    finally:
        subprocess.run(["chmod", "-R", "u+rwX", str(root)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_permission_denied_outputs(world: Path) -> None:
    before = tree_hash(world / "v1")
    ann = "v1/annotation.train.json"
    for args in (("mock", "ro/out", "--videos", "1", "--clips", "1"),
                 ("upgrade-annotations", ann, "-o", "ro/x.json"),
                 ("shard", "v1", "ro/out", "--size", "1"),
                 ("stats", "v1", "--plots", "ro/plots")):
        line = one_line_error(_as_nobody(*args, cwd=world), 2, "permission denied")
        assert "ro/" in line
    assert sorted(os.listdir(world / "ro")) == []
    assert tree_hash(world / "v1") == before


def test_permission_denied_inputs(world: Path) -> None:
    before = tree_hash(world / "v1")
    h5 = world / "v1" / "dino.train.h5"
    h5.chmod(0)
    try:
        one_line_error(_as_nobody("shard", "v1", "out", "--size", "1", cwd=world), 2,
                       "v1/dino.train.h5: permission denied")
        proc = _as_nobody("validate", "v1", "--json", cwd=world)  # a finding per file; the rest is checked
        assert proc.returncode == 1 and not proc.stderr.strip()
        errors = json.loads(proc.stdout)["errors"]
        assert [(e["code"], Path(e["file"]).name, e["message"]) for e in errors] == [
            ("h5-unreadable", "dino.train.h5", "cannot open: permission denied")]
        proc = _as_nobody("stats", "v1", "--json", cwd=world)  # per-file failure: exit 1, named
        assert proc.returncode == 1 and not proc.stderr.strip()
        assert json.loads(proc.stdout)["problems"] == ["dino.train.h5: cannot open: permission denied"]
    finally:
        h5.chmod(0o644)
    ann = world / "v1" / "annotation.dev.json"
    ann.chmod(0)
    try:
        proc = _as_nobody("validate", "v1", "--json", cwd=world)
        assert proc.returncode == 1
        errors = json.loads(proc.stdout)["errors"]
        assert [(e["code"], e["message"]) for e in errors] == [
            ("json-invalid", "cannot read: v1/annotation.dev.json: permission denied")]
        for args in (("stats", "v1"), ("shard", "v1", "out", "--size", "1"),
                     ("upgrade-annotations", "v1/annotation.dev.json", "-o", "x.json")):
            proc = _as_nobody(*args, cwd=world)
            assert proc.returncode == 2 and "annotation.dev.json" in proc.stderr, proc.stderr
            assert "permission denied" in proc.stderr or "is not readable" in proc.stderr, proc.stderr
            assert_no_traceback(proc)
    finally:
        ann.chmod(0o644)
    (world / "v2" / "dino").chmod(0)  # an unreadable directory: the layout cannot be known, exit 2
    try:
        for args in (("validate", "v2"), ("stats", "v2"), ("shard", "v2", "out", "--size", "1")):
            one_line_error(_as_nobody(*args, cwd=world), 2, "v2/dino: permission denied")
    finally:
        (world / "v2" / "dino").chmod(0o755)
    assert not (world / "out").exists() and not (world / "x.json").exists()
    assert tree_hash(world / "v1") == before


def test_permission_denied_in_a_pkl_dir(world: Path) -> None:
    import pickle

    pose = {"keypoints": np.zeros((3, 75, 3), np.float32), "confidences": np.ones((3, 75), np.float32)}
    (world / "pk" / "sub").mkdir(parents=True)
    for name in ("a.pkl", "b.pkl", "sub/c.pkl"):
        with open(world / "pk" / name, "wb") as fh:
            pickle.dump(pose, fh)
    subprocess.run(["chmod", "-R", "a+rX", str(world / "pk")], check=True)
    before = tree_hash(world / "pk")
    for locked, want in ((world / "pk" / "a.pkl", ("pk/a.pkl", "cannot read: permission denied")),
                         (world / "pk" / "sub", ("pk/sub", "cannot list this directory (permission denied): "
                                                 "its pkls are not checked"))):
        mode = locked.stat().st_mode
        locked.chmod(0)
        try:
            proc = _as_nobody("validate", "pk", "--json", cwd=world)  # the file's failure; the rest is checked
            assert proc.returncode == 1 and not proc.stderr.strip(), proc.stderr
            report = json.loads(proc.stdout)
            assert [(e["code"], e["file"], e["message"]) for e in report["errors"]] == [("pkl-unreadable", *want)]
            assert report["stats"]["videos"] == (3 if locked.name == "a.pkl" else 2)
        finally:
            locked.chmod(mode)
    assert tree_hash(world / "pk") == before


# --- disk full ----------------------------------------------------------------------------

def test_disk_full_mock_and_shard(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_mock(src, layout="v1", videos=6, clips=12, seed=6)  # about 13 MB
    before = tree_hash(src)
    with tmpfs(tmp_path / "full") as full:
        one_line_error(run_cli("sldata", "mock", full / "mock_data"), 2, "no space left on device")
        assert os.listdir(full) == []
        for comp, size in (("keep", "2"), ("keep", "1000"), ("none", "2"), ("gzip", "2"), ("lzf", "2")):
            # keep/2 copies HDF5 objects, keep/1000 whole files; gzip used to end in a segfault
            proc = run_cli("sldata", "shard", src, full / "dst", "--size", size, "--compression", comp)
            one_line_error(proc, 2, "no space left on device", str(full))
            assert proc.returncode != -signal.SIGSEGV
            assert os.listdir(full) == [], comp
        # the same command where there is room: nothing was left behind that stops it
        big = tmp_path / "room"
        assert run_cli("sldata", "shard", src, big, "--size", "2", "--compression", "gzip").returncode == 0
        assert run_cli("sldata", "validate", big).returncode == 0
    assert tree_hash(src) == before


def test_disk_full_upgrade_and_plots(small_v1: Path, tmp_path: Path) -> None:
    before = tree_hash(small_v1)
    with tmpfs(tmp_path / "full", "1m") as full:
        ballast = full / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)  # fill the disk: every output below overflows
        try:
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        one_line_error(run_cli("sldata", "upgrade-annotations", small_v1 / "annotation.train.json", "-o",
                               full / "out.json"), 2, "no space left on device")
        one_line_error(run_cli("sldata", "stats", small_v1, "--plots", full / "plots"), 2,
                       "no space left on device")
        assert sorted(os.listdir(full)) in (["ballast"], ["ballast", "plots"])
        assert not (full / "plots").exists() or os.listdir(full / "plots") == []
        assert not leftovers(full)
    assert tree_hash(small_v1) == before


# --- paths --------------------------------------------------------------------------------

def test_output_below_a_file_and_long_names(small_v1: Path, tmp_path: Path) -> None:
    before = tree_hash(small_v1)
    afile = tmp_path / "afile"
    afile.write_text("user data")
    for args in (("mock", afile / "sub" / "out"),
                 ("shard", small_v1, afile / "sub" / "dst", "--size", "1"),
                 ("upgrade-annotations", small_v1 / "annotation.train.json", "-o", afile / "sub" / "x.json"),
                 ("stats", small_v1, "--plots", afile / "sub" / "plots")):
        line = one_line_error(invoke_cli("sldata", *args), 2, "afile")
        assert "not a directory" in line or "a file" in line, line
    for args in (("mock", afile / "out"),  # directly below the file: not "already exists"
                 ("shard", small_v1, afile / "dst", "--size", "1"),
                 ("upgrade-annotations", small_v1 / "annotation.train.json", "-o", afile / "x.json")):
        one_line_error(invoke_cli("sldata", *args), 2, "afile: a part of this path is a file, not a directory")
    assert afile.read_text() == "user data"
    one_line_error(invoke_cli("sldata", "stats", small_v1, "--plots", afile), 2, "afile", "not a directory")
    # names that fit in 255 bytes, but not with a temporary suffix
    name = "n" * 250
    assert invoke_cli("sldata", "mock", tmp_path / name, "--videos", "1", "--clips", "2").returncode == 0
    assert invoke_cli("sldata", "shard", small_v1, tmp_path / (name + "_m"), "--size", "1").returncode == 0
    assert invoke_cli("sldata", "upgrade-annotations", small_v1 / "annotation.train.json",
                   "-o", tmp_path / (name + ".json")).returncode == 0
    assert invoke_cli("sldata", "validate", tmp_path / (name + "_m")).returncode == 0
    assert not leftovers(tmp_path)
    assert tree_hash(small_v1) == before


# --- garbled compressed chunks ------------------------------------------------------------

def test_garbled_chunk_shard_and_stats(small_v1: Path, tmp_path: Path) -> None:
    h5 = small_v1 / "dino.train.h5"
    video, clip = garble_clip(h5)
    before = tree_hash(small_v1)
    where = f"dino.train.h5 video {video!r} clip {clip!r}: cannot read"
    for comp in ("none", "gzip"):  # these decompress: the clip cannot be read, exit 2, nothing written
        proc = invoke_cli("sldata", "shard", small_v1, tmp_path / "dst", "--size", "1", "--compression", comp)
        one_line_error(proc, 2, where)
        assert not (tmp_path / "dst").exists() and not leftovers(tmp_path)
    # keep: raw chunks are copied as they are (bit-exact, no decompression), garbled bytes included
    proc = invoke_cli("sldata", "shard", small_v1, tmp_path / "dst", "--size", "1")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "dst" / "dino" / "metadata_dino.train.json").read_text())
    with h5py.File(h5) as a, h5py.File(tmp_path / "dst" / "dino" / f"dino.train.{meta[video]}.h5") as b:
        assert a[video][clip].id.read_direct_chunk((0, 0)) == b[video][clip].id.read_direct_chunk((0, 0))
    # stats: shallow reads headers only (fine); --deep is a per-clip failure, never "missing"
    assert invoke_cli("sldata", "stats", small_v1).returncode == 0
    proc = invoke_cli("sldata", "stats", small_v1, "--deep", "--json")
    assert proc.returncode == 1 and not proc.stderr.strip()
    d = json.loads(proc.stdout)
    assert len(d["problems"]) == 1 and d["problems"][0].startswith(where)
    dino = d["splits"]["train"]["reps"]["dino"]
    assert (dino["missing_videos"], dino["missing_clips"], dino["unreadable_clips"]) == (0, 0, 1)
    proc = invoke_cli("sldata", "stats", small_v1, "--deep")
    assert proc.returncode == 1 and "unreadable" in proc.stdout and f"clip {clip!r}: cannot read data" in proc.stdout
    assert_no_traceback(proc)
    assert tree_hash(small_v1) == before


# --- option ranges ------------------------------------------------------------------------

@pytest.mark.parametrize("args, option, bound", [
    (("validate", ".", "--workers", "-3"), "--workers", "greater than or equal to 1"),
    (("stats", ".", "--workers", "-2"), "--workers", "greater than or equal to 1"),
    (("shard", ".", "--size", "0"), "--size", "greater than or equal to 1"),
    (("mock", "x", "--seed", "-1"), "--seed", "greater than or equal to 0"),
    (("mock", "x", "--videos", "0"), "--videos", "greater than or equal to 1"),
    (("mock", "x", "--clips", "0"), "--clips", "greater than or equal to 1"),
])
def test_option_ranges(tmp_path: Path, args: tuple, option: str, bound: str) -> None:
    proc = invoke_cli("sldata", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    text = " ".join(proc.stderr.replace("│", " ").split())
    assert option in text and bound in text, text
    assert os.listdir(tmp_path) == []


def test_mock_seed_any_nonnegative_integer(tmp_path: Path) -> None:
    proc = invoke_cli("sldata", "mock", tmp_path / "m", "--seed", str(2**70), "--videos", "1", "--clips", "1")
    assert proc.returncode == 0, proc.stderr


# --- kill -9 and reruns -------------------------------------------------------------------

def _kill_when(cmd: list[str], ready, cwd: Path, timeout: float = 60) -> None:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(0.2)  # the HDF5 writer child dies with its parent (PR_SET_PDEATHSIG)


def _tmp_files(parent: Path, name: str) -> int:
    return sum(len(files) for t in parent.glob(name + TMP_MARK + "*") for _, _, files in os.walk(t))


@pytest.mark.parametrize("point", [0, 3, 9])
def test_kill9_mock_then_rerun(tmp_path: Path, point: int) -> None:
    out = tmp_path / "mock_data"
    cmd = [str(BIN / "sldata"), "mock", str(out), "--videos", "30", "--clips", "12"]
    _kill_when(cmd, lambda: any(tmp_path.glob("mock_data" + TMP_MARK + "*"))
               and _tmp_files(tmp_path, "mock_data") >= point, tmp_path)
    assert not out.exists()
    proc = invoke_cli("sldata", "mock", out, "--videos", "2", "--clips", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock_data"]
    assert invoke_cli("sldata", "validate", out).returncode == 0


@pytest.mark.parametrize("point", [0, 4])
def test_kill9_shard_then_rerun(tmp_path: Path, point: int) -> None:
    src = tmp_path / "src"
    write_mock(src, layout="v1", videos=24, clips=8, seed=7)
    before = tree_hash(src)
    dst = tmp_path / "dst"
    cmd = [str(BIN / "sldata"), "shard", str(src), str(dst), "--size", "3", "--compression", "gzip"]
    _kill_when(cmd, lambda: any(tmp_path.glob("dst" + TMP_MARK + "*")) and _tmp_files(tmp_path, "dst") >= point,
               tmp_path)
    assert not dst.exists()
    proc = invoke_cli("sldata", "shard", src, dst, "--size", "3")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst", "src"]
    assert invoke_cli("sldata", "validate", dst).returncode == 0
    assert tree_hash(src) == before


def test_two_shards_into_one_dst(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_mock(src, layout="v1", videos=24, clips=8, seed=8)
    dst = tmp_path / "dst"
    first = subprocess.Popen([str(BIN / "sldata"), "shard", str(src), str(dst), "--size", "3",
                              "--compression", "gzip"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not any(tmp_path.glob("dst" + TMP_MARK + "*")) and first.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        second = run_cli("sldata", "shard", src, dst, "--size", "7")
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    line = one_line_error(second, 2, "dst: another run is writing this dataset", f"pid {first.pid}")
    assert "shard" in line
    assert first.returncode == 0, err
    assert invoke_cli("sldata", "validate", dst).returncode == 0
    shards = json.loads((dst / "dino" / "metadata_dino.train.json").read_text())
    assert max(shards.values()) == 24 // 3 - 1  # the first run's --size 3, whole
    assert not leftovers(tmp_path)


# --- names that are not UTF-8 -------------------------------------------------------------

def test_non_utf8_names_in_json_reports(small_v1: Path, tmp_path: Path) -> None:
    root = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/d\xe9"))
    shutil.copytree(small_v1, root)
    Path(os.fsdecode(os.fsencode(str(root)) + b"/\xe9")).write_bytes(b"x")
    (root / "mae.dev.h5").unlink()  # a missing-file finding: the path is in the report
    for args in (("validate", root, "--json"), ("stats", root, "--json"), ("validate", root), ("stats", root)):
        proc = subprocess.run([str(BIN / "sldata"), *map(os.fsencode, map(str, args))], capture_output=True)
        assert proc.returncode == (1 if args[0] == "validate" else 0), proc.stderr
        assert b"Traceback" not in proc.stderr
        text = proc.stdout.decode("utf-8")  # valid UTF-8, the odd byte escaped
        assert "\\xe9" in text  # `d\xe9` (JSON: `d\\xe9`)
        if "--json" in args:
            json.loads(text)
    pkl = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/pk"))
    pkl.mkdir()
    import pickle

    pose = {"keypoints": np.zeros((3, 75, 3), np.float32), "confidences": np.ones((3, 75), np.float32)}
    for name in (b"\xe9.pkl", b"ok.pkl"):
        with open(os.fsencode(str(pkl)) + b"/" + name, "wb") as fh:
            pickle.dump(pose, fh)
    proc = subprocess.run([str(BIN / "sldata"), "validate", str(pkl), "--json"], capture_output=True)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["stats"]["videos"] == 2


# --- --overwrite never deletes a user's files ---------------------------------------------

def test_overwrite_keeps_a_directory_with_user_files(small_v1: Path, tmp_path: Path) -> None:
    for args, dst in ((("mock",), tmp_path / "m"), (("shard", small_v1), tmp_path / "s")):
        extra = ("--size", "1") if args[0] == "shard" else ("--videos", "1", "--clips", "1")
        assert invoke_cli("sldata", *args, dst, *extra).returncode == 0
        (dst / "notes.txt").write_text("mine")
        one_line_error(invoke_cli("sldata", *args, dst, *extra), 2, "exists and is not empty", "--overwrite")
        one_line_error(invoke_cli("sldata", *args, dst, *extra, "--overwrite"), 2,
                       "holds files that this command did not write")
        assert (dst / "notes.txt").read_text() == "mine"
        (dst / "notes.txt").unlink()
        assert invoke_cli("sldata", *args, dst, *extra, "--overwrite").returncode == 0  # its own output: replaced
        assert not leftovers(tmp_path)
