"""sldata.io: the one output rule, durability, locks and exact JSON every command relies on."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sldata import io
from sldata.errors import DataError, UserError, describe_os_error


# --- temporary names and stale temporaries -------------------------------------------------

def test_tmp_name_fits_name_max_and_is_recognised(tmp_path: Path) -> None:
    for n in (1, 200, 230, 255):
        target = tmp_path / ("é" * (n // 2) if n % 2 == 0 else "a" * n)
        if len(os.fsencode(target.name)) > io.NAME_MAX:
            continue
        tmp = io.tmp_name(target)
        assert len(os.fsencode(tmp.name)) <= io.NAME_MAX
        assert io.is_temporary(tmp)
        tmp.write_bytes(b"x")  # the name is usable on a real file system
        tmp.unlink()


def test_long_name_atomic_write_end_to_end(tmp_path: Path) -> None:
    target = tmp_path / ("n" * 250 + ".json")
    io.write_json(target, {"a": 1})
    assert json.loads(target.read_bytes()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_runs_removed_live_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.h5"
    dead = tmp_path / f"out.h5{io.TMP_MARK}{io._HOST}-{_dead_pid()}-0123abcd"
    old_style = tmp_path / f"out.h5{io.TMP_MARK}{_dead_pid()}-0123abcd"  # before host was recorded
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f"out.h5{io.TMP_MARK}{io._HOST}-{live_proc.pid}-0123abcd"
        foreign = tmp_path / f"out.h5{io.TMP_MARK}ffffffff-1-0123abcd"  # another host, fresh
        other_output = tmp_path / f"other.h5{io.TMP_MARK}{io._HOST}-{_dead_pid()}-0123abcd"
        (dead).mkdir()
        (dead / "big").write_bytes(b"x" * 1000)
        for p in (old_style, live, foreign, other_output):
            p.write_bytes(b"x")
        removed = io.remove_stale_temporaries(target)
        assert set(removed) == {dead, old_style}
        assert live.exists() and foreign.exists() and other_output.exists()
        old = time.time() - io.FOREIGN_STALE_S - 60
        os.utime(foreign, (old, old))
        assert io.remove_stale_temporaries(target) == [foreign]
    finally:
        live_proc.kill()
        live_proc.wait()


def test_atomic_path_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    code = ("import sys, time; from sldata import io\n"
            "with io.atomic_path(sys.argv[1]) as tmp:\n"
            "    open(tmp, 'wb').write(b'x' * 1000); print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and io.is_temporary(left[0]) and not target.exists()
    io.write_bytes_atomic(target, b"done")
    assert sorted(tmp_path.iterdir()) == [target] and target.read_bytes() == b"done"


# --- the output rule -----------------------------------------------------------------------

def test_output_never_names_an_input(tmp_path: Path) -> None:
    src = tmp_path / "video.mp4"
    src.write_bytes(b"precious")
    (tmp_path / "hard.mp4").hardlink_to(src)
    (tmp_path / "soft.mp4").symlink_to(src)
    for out in (src, tmp_path / "hard.mp4", tmp_path / "soft.mp4", tmp_path / "." / "video.mp4"):
        with pytest.raises(UserError, match="is the input"):
            io.write_bytes_atomic(out, b"overwritten", inputs=[src])
    assert src.read_bytes() == b"precious"


def test_a_directory_is_never_replaced_by_a_file(tmp_path: Path) -> None:
    d = tmp_path / "x.png"
    d.mkdir()
    (d / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="is a directory"):
        io.write_bytes_atomic(d, b"png")
    with pytest.raises(UserError, match="is a directory"):  # known only once written (kind=None)
        with io.atomic_path(d) as tmp:
            tmp.write_bytes(b"png")
    assert (d / "mine.txt").read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_a_directory_is_replaced_only_when_owned_and_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    out.mkdir()
    (out / "a.h5").write_bytes(b"old")

    def write(**rule: object) -> None:
        with io.atomic_path(out, kind="dir", **rule) as tmp:
            tmp.mkdir()
            (tmp / "a.h5").write_bytes(b"new")

    with pytest.raises(UserError, match="not empty"):
        write(overwrite=False, owned=lambda p: True)
    with pytest.raises(UserError, match="did not write"):
        write(overwrite=True, owned=lambda p: False)
    with pytest.raises(UserError, match="did not write"):
        write(overwrite=True)  # no owner check given: never replaced
    assert (out / "a.h5").read_bytes() == b"old"
    write(overwrite=True, owned=lambda p: True)
    assert (out / "a.h5").read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]


def test_output_directory_holding_an_input_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "input.json").write_text("{}")
    with pytest.raises(UserError, match="holds the input"):
        with io.atomic_path(out, kind="dir", overwrite=True, owned=lambda p: True,
                            inputs=[out / "input.json"]) as tmp:
            tmp.mkdir()
    assert (out / "input.json").read_text() == "{}"


def test_failure_inside_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "t.bin"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"previous" and sorted(tmp_path.iterdir()) == [target]


# --- locks -------------------------------------------------------------------------------

def test_output_lock_refuses_a_second_holder_and_names_it(tmp_path: Path) -> None:
    target = tmp_path / "out"
    code = ("import sys, time; from sldata import io\n"
            "with io.output_lock(sys.argv[1], 'dataset'):\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=rf"another run is writing this dataset \(pid {proc.pid} on "):
            with io.output_lock(target, "dataset"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with io.output_lock(target, "dataset"):  # the kernel released the dead holder's lock
        assert io.lock_path(target).exists()
    assert not io.lock_path(target).exists()


# --- reading and environment errors ------------------------------------------------------

def test_reading_locates_a_failed_read() -> None:
    with pytest.raises(DataError) as info:
        with io.reading("/data/f.h5", video="v1", clip="3"):
            raise OSError("Can't synchronously read data (filter returned failure during read)")
    assert str(info.value) == ("/data/f.h5 video 'v1' clip '3': cannot read: "
                               "Can't synchronously read data (filter returned failure during read)")
    import pickle

    again = pickle.loads(pickle.dumps(info.value))  # crosses worker processes intact
    assert str(again) == str(info.value) and again.video == "v1"


def test_describe_os_error_by_errno_and_from_h5py_text() -> None:
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/m/out.h5")) == \
        "/m/out.h5: no space left on device"
    h5 = OSError("Unable to synchronously create file (unable to open file: name = 'o.h5', "
                 "errno = 13, error message = 'Permission denied', flags = 13)")
    assert describe_os_error(h5) == "o.h5: permission denied"
    odd = OSError(errno.EACCES, "Permission denied", os.fsdecode(b"caf\xe9.mp4"))
    assert describe_os_error(odd) == "caf\\xe9.mp4: permission denied"


def test_text_name_is_printable_utf8() -> None:
    name = os.fsdecode(b"caf\xe9")
    assert io.text_name(name) == "caf\\xe9" and io.text_name(b"caf\xe9") == "caf\\xe9"
    assert io.text_name("café") == "café"


# --- JSON: verbatim ------------------------------------------------------------------------

def test_json_keeps_big_integers_order_and_nan() -> None:
    data = b'{"z": {"n": 18446744073709551617, "m": -99999999999999999999999}, "a": NaN, "k": [1, 2]}'
    obj = io.loads_json(data)
    assert list(obj) == ["z", "a", "k"] and obj["z"]["n"] == 2**64 + 1
    again = io.loads_json(io.dumps_json(obj))
    assert again["z"] == obj["z"] and list(again) == ["z", "a", "k"]
    assert b"18446744073709551617" in io.dumps_json(obj)


def test_json_duplicate_keys_are_refused_with_their_place() -> None:
    with pytest.raises(io.DuplicateKeyError, match="key 'vid' occurs twice in the object at top level"):
        io.loads_json(b'{"vid": {"0": {}}, "other": {}, "vid": {"1": {}}}')
    with pytest.raises(io.DuplicateKeyError, match="key '3' occurs twice in the object at vid") as info:
        io.loads_json(b'{"vid": {"3": {"translation": "a"}, "3": {"translation": "b"}}}')
    assert info.value.key == "3" and info.value.where == ["vid"]


def test_json_deep_nesting_is_a_message_not_a_recursion_error(tmp_path: Path) -> None:
    p = tmp_path / "deep.json"
    p.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(io.JsonError, match="deep.json: invalid JSON: nested too deeply"):
        io.read_json(p)


def test_a_forked_worker_never_keeps_its_dead_parents_lock(tmp_path: Path) -> None:
    """pkl2h5/validate workers are forked while the output is locked: an orphan must not hold it."""
    target = tmp_path / "out.h5"
    code = ("import os, sys, time; from sldata import io\n"
            "with io.output_lock(sys.argv[1], 'pose h5'):\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(30); os._exit(0)\n"
            "    print('locked', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with io.output_lock(target, "pose h5"):  # the orphan (still asleep) holds no copy of the lock
        pass


def test_dot_and_dotdot_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="is the current directory"):
        with io.atomic_path(".", kind="dir") as tmp:
            tmp.mkdir()
    assert io.lock_path("a/..") == io.lock_path(".") == tmp_path.parent / f".{tmp_path.name}{io.LOCK_SUFFIX}"
    assert io.lock_path("run", inside=True) == tmp_path / "run" / io.LOCK_SUFFIX
    assert io.tmp_name(".").parent == tmp_path.parent
