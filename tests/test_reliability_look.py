"""Issue 13 for `render`, `export-pose` and `import-pose`: the failure matrix on real files.

Every case runs the real console script and asserts the exit code, the one-line
message, no traceback, that every input is byte-identical afterwards and that
no output or temporary is left. Disk full uses a real 1 MiB tmpfs, permissions
a real unprivileged user (setpriv), kills a real SIGKILL; each skips with its
reason where the machine does not allow it.
"""

from __future__ import annotations

import contextlib
import hashlib
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

from sldata.interop import export_pose
from sldata.io import TMP_MARK, is_temporary
from sldata.pose import PoseH5, PoseH5Writer

from .conftest import BIN, assert_no_traceback, invoke_cli, run_cli, tmpfs
from .test_render import known_sample

NOBODY = 65534


# --- helpers ------------------------------------------------------------------------------

def tree_hash(root: Path) -> dict[str, str]:
    """Every file under root (names as bytes, symlinks as their target) -> a digest."""
    out: dict[str, str] = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, os.fsencode(root)).decode("utf-8", "backslashreplace")
            if os.path.islink(p):
                out[rel] = "-> " + os.fsdecode(os.readlink(p))
            else:
                with open(p, "rb") as fh:
                    out[rel] = hashlib.sha256(fh.read()).hexdigest()
    return out


def leftovers(root: Path) -> list[str]:
    """Temporaries and lock files of this toolkit anywhere under root."""
    return [os.fsdecode(os.path.join(d, n)) for d, dirs, files in os.walk(os.fsencode(root))
            for n in files + dirs if is_temporary(os.fsdecode(n))]


def one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> None:
    """Exit `code`, no traceback, the error is one line holding every needle."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert_no_traceback(proc)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def pose_h5(path: Path, frames: int = 6, width: int = 200, height: int = 100) -> Path:
    with PoseH5Writer(path) as w:
        w.add("clip", known_sample(frames, width, height))
        w.add("other", known_sample(2))
    return path


def source_video(path: Path, frames: int = 6) -> Path:
    import cv2

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(frames):
        vw.write(np.full((120, 160, 3), 40 + 10 * i, np.uint8))
    vw.release()
    return path


def garble_first_chunk(path: Path, key: str = "clip") -> None:
    """Overwrite the inside of the first lzf chunk of keypoints/KEY (as a bad disk sector would)."""
    with h5py.File(path, "r") as f:
        ds = f["keypoints"][key]
        assert ds.compression == "lzf"
        info = ds.id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 2)
        fh.write(b"\xff" * max(4, info.size - 4))


@contextlib.contextmanager
def small_tmpfs(free: int) -> Iterator[Path]:
    """A real 1 MiB tmpfs with about `free` bytes left; unmounted afterwards whatever happens."""
    mnt = Path(tempfile.mkdtemp(prefix="sldata-full-"))
    try:
        with tmpfs(mnt, "1m"):
            st = os.statvfs(mnt)
            (mnt / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - free))
            yield mnt
    finally:
        mnt.rmdir()


def as_nobody(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    """Run an sldata command as an unprivileged user (root reads everything)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as an unprivileged user")
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           str(BIN / "sldata"), *map(str, args)]
    home = Path(tempfile.gettempdir()) / "sldata-nobody-home"  # caches (matplotlib) go here, not into cwd
    home.mkdir(mode=0o777, exist_ok=True)
    home.chmod(0o777)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HOME": str(home)})


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory that an unprivileged user can enter (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="sldata-perm-"))
    d.chmod(0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- the output rule --------------------------------------------------------------------

def test_render_never_writes_over_an_input(tmp_path: Path) -> None:
    src = pose_h5(tmp_path / "p.h5")
    video = source_video(tmp_path / "src.mp4")
    os.link(video, tmp_path / "hard.mp4")
    (tmp_path / "soft.mp4").symlink_to("src.mp4")
    shutil.copy(src, tmp_path / "pose.gif")  # a pose h5 that happens to carry an image suffix
    (tmp_path / "pose_link.png").symlink_to("p.h5")
    before = tree_hash(tmp_path)
    for args in ([src, "clip", "-o", video, "--video", video],
                 [src, "clip", "-o", tmp_path / "hard.mp4", "--video", video],
                 [src, "clip", "-o", tmp_path / "soft.mp4", "--video", video],
                 [tmp_path / "pose.gif", "clip", "-o", tmp_path / "pose.gif"],
                 [src, "clip", "-o", tmp_path / "pose_link.png"]):
        proc = invoke_cli("sldata", "render", *args)
        one_line_error(proc, "this output is the input")
    assert tree_hash(tmp_path) == before and not leftovers(tmp_path)


def test_an_existing_directory_is_never_replaced_by_a_file(tmp_path: Path) -> None:
    src = pose_h5(tmp_path / "p.h5")
    export_pose(src, tmp_path / "poses")
    for name in ("X.png", "X.mp4", "X.h5"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "my notes.txt").write_text("mine")
    (tmp_path / "a_file").write_text("not a directory")
    before = tree_hash(tmp_path)
    for name in ("X.png", "X.mp4"):
        proc = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / name)
        one_line_error(proc, f"{name} is a directory")
    one_line_error(invoke_cli("sldata", "import-pose", tmp_path / "poses", "-o", tmp_path / "X.h5"),
                   "X.h5 is a directory")
    one_line_error(invoke_cli("sldata", "export-pose", src, "-o", tmp_path / "a_file"),
                   "a_file: exists and is not a directory")
    assert tree_hash(tmp_path) == before and not leftovers(tmp_path)


def test_import_pose_output_never_an_input_pose(tmp_path: Path) -> None:
    export_pose(pose_h5(tmp_path / "p.h5"), tmp_path / "poses")
    os.link(tmp_path / "poses" / "clip.pose", tmp_path / "hard.h5")
    (tmp_path / "soft.h5").symlink_to(tmp_path / "poses" / "other.pose")
    before = tree_hash(tmp_path)
    for out in (tmp_path / "poses" / "clip.pose", tmp_path / "hard.h5", tmp_path / "soft.h5"):
        one_line_error(invoke_cli("sldata", "import-pose", tmp_path / "poses", "-o", out), "this output is the input")
    assert tree_hash(tmp_path) == before and not leftovers(tmp_path)


# --- garbled data -----------------------------------------------------------------------

def test_garbled_chunk_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    src = pose_h5(tmp_path / "in" / "p.h5")
    garble_first_chunk(src)
    before = tree_hash(tmp_path / "in")
    for out in ("x.png", "x.gif", "x.mp4"):
        proc = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "out" / out)
        one_line_error(proc, "p.h5 video 'clip': cannot read")
    proc = invoke_cli("sldata", "export-pose", src, "-o", tmp_path / "poses")
    one_line_error(proc, "p.h5 video 'clip': cannot read")
    assert tree_hash(tmp_path / "in") == before
    assert not (tmp_path / "poses").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    assert not leftovers(tmp_path)


# --- names that are not UTF-8, odd keys ----------------------------------------------------

def test_import_pose_non_utf8_name_gets_an_escaped_key(tmp_path: Path) -> None:
    export_pose(pose_h5(tmp_path / "p.h5"), tmp_path / "poses")
    os.rename(tmp_path / "poses" / "clip.pose", os.fsencode(tmp_path / "poses") + b"/caf\xe9.pose")
    before = tree_hash(tmp_path / "poses")
    proc = invoke_cli("sldata", "import-pose", tmp_path / "poses", "-o", tmp_path / "back.h5", "--json")
    assert proc.returncode == 0, proc.stderr
    assert_no_traceback(proc)
    assert '"count": 2' in proc.stdout
    with h5py.File(tmp_path / "back.h5", "r") as f:
        assert sorted(f["keypoints"]) == ["caf\\xe9", "other"]  # valid UTF-8: \xNN spelled out
        source = f["keypoints"]["caf\\xe9"].attrs["source"]  # the name as it was, byte for byte
        assert (os.fsencode(source) if isinstance(source, str) else bytes(source)) == b"caf\xe9.pose"
    assert tree_hash(tmp_path / "poses") == before
    # the escaped key is an ordinary key for every other command
    proc = invoke_cli("sldata", "render", tmp_path / "back.h5", "caf\\xe9", "-o", tmp_path / "c.png")
    assert proc.returncode == 0 and "caf\\xe9" in proc.stdout, proc.stderr
    proc = invoke_cli("sldata", "export-pose", tmp_path / "back.h5", "-o", tmp_path / "again")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "caf\\xe9.pose").is_file()


def test_odd_keys_never_crash(tmp_path: Path) -> None:
    odd = ["[bold]x[b]", ":a:", "-k", "sp ace", "\u00e9\u6f22"]
    with PoseH5Writer(tmp_path / "p.h5") as w:
        for k in odd:
            w.add(k, known_sample(2))
    for k in odd:
        proc = invoke_cli("sldata", "render", tmp_path / "p.h5", "-o", tmp_path / "o.png", "--", k)
        assert proc.returncode == 0 and f"'{k}'" in proc.stdout, (k, proc.stdout, proc.stderr)
    proc = invoke_cli("sldata", "export-pose", tmp_path / "p.h5", "-o", tmp_path / "poses")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "poses").iterdir()) == sorted(f"{k}.pose" for k in odd)
    # a key given on the command line that is not UTF-8: "no such video", no crash
    proc = run_cli("sldata", "render", tmp_path / "p.h5", "caf\udce9", "-o", tmp_path / "n.png")
    one_line_error(proc, "no video 'caf\\xe9'")
    # a pose h5 of another tool holding a key that is not UTF-8 (h5py hands it out as bytes)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f.attrs["keypoint_set"] = "openhands75"
        f.create_dataset(b"keypoints/caf\xe9", data=known_sample(2).keypoints)
        f.create_dataset(b"visibility/caf\xe9", data=known_sample(2).confidences)
    before = tree_hash(tmp_path)
    for args in (["render", tmp_path / "foreign.h5", "-o", tmp_path / "f.png"],
                 ["render", tmp_path / "foreign.h5", "caf\udce9", "-o", tmp_path / "f.png"],
                 ["export-pose", tmp_path / "foreign.h5", "-o", tmp_path / "fposes"]):
        one_line_error(run_cli("sldata", *args), "foreign.h5: the video key 'caf\\xe9' is not UTF-8 text")
    assert tree_hash(tmp_path) == before and not (tmp_path / "fposes").exists()


# --- the environment: permissions, disk full, a file on the path, long names -------------

def test_permission_denied_on_inputs(shared_dir: Path) -> None:
    src = pose_h5(shared_dir / "p.h5")
    video = source_video(shared_dir / "v.mp4")
    export_pose(src, shared_dir / "poses")
    (shared_dir / "poses").chmod(0o755)
    shutil.copytree(shared_dir / "poses", shared_dir / "locked")
    (shared_dir / "poses" / "other.pose").chmod(0o600)  # one unreadable file among readable ones
    (shared_dir / "locked").chmod(0o700)  # an unreadable directory
    secret = shutil.copy(src, shared_dir / "secret.h5")
    Path(secret).chmod(0o600)
    video.chmod(0o600)
    before = tree_hash(shared_dir)
    one_line_error(as_nobody("render", secret, "clip", "-o", "o.png", cwd=shared_dir), "secret.h5: permission denied")
    one_line_error(as_nobody("render", src, "clip", "-o", "o.png", "--video", video, cwd=shared_dir),
                   "v.mp4: permission denied")
    one_line_error(as_nobody("export-pose", secret, "-o", "out", cwd=shared_dir), "secret.h5: permission denied")
    one_line_error(as_nobody("import-pose", "locked", "-o", "l.h5", cwd=shared_dir), "locked: permission denied")
    proc = as_nobody("import-pose", "poses", "-o", "i.h5", cwd=shared_dir)  # per file: recorded, run goes on
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc)
    assert "failed other.pose: permission denied" in proc.stdout, proc.stdout
    with PoseH5(shared_dir / "i.h5") as h5:
        assert h5.keys() == ["clip"]
    (shared_dir / "i.h5").unlink()
    assert tree_hash(shared_dir) == before
    assert not leftovers(shared_dir) and not (shared_dir / "o.png").exists() and not (shared_dir / "out").exists()


def test_permission_denied_on_the_output_location(shared_dir: Path) -> None:
    src = pose_h5(shared_dir / "p.h5")
    export_pose(src, shared_dir / "poses")
    (shared_dir / "poses").chmod(0o755)
    ro = shared_dir / "ro"
    ro.mkdir(mode=0o755)  # root's: nobody cannot create anything in it
    before = tree_hash(shared_dir)
    for out in ("x.png", "x.gif", "x.mp4"):
        one_line_error(as_nobody("render", src, "clip", "-o", ro / out, cwd=shared_dir), f"ro/{out}: permission denied")
    one_line_error(as_nobody("export-pose", src, "-o", ro / "poses", cwd=shared_dir), "permission denied")
    one_line_error(as_nobody("import-pose", "poses", "-o", ro / "i.h5", cwd=shared_dir), "ro/i.h5: permission denied")
    assert tree_hash(shared_dir) == before and not leftovers(shared_dir) and not list(ro.iterdir())


def test_disk_full(tmp_path: Path) -> None:
    src = pose_h5(tmp_path / "p.h5", frames=300, width=640, height=480)
    export_pose(src, tmp_path / "poses")
    before = tree_hash(tmp_path)
    with small_tmpfs(free=24 << 10) as full:
        for out in ("x.png", "x.gif", "x.mp4"):
            proc = run_cli("sldata", "render", src, "clip", "-o", full / out, "--sheet", "100")
            one_line_error(proc, f"{out}: no space left on device")
        one_line_error(run_cli("sldata", "export-pose", src, "-o", full / "poses"), "no space left on device")
        left = sorted(p.name for p in full.iterdir())
        assert left in (["filler"], ["filler", "poses"]), left  # export-pose's (empty) directory may stay
        assert not (full / "poses").exists() or not list((full / "poses").iterdir())
    assert tree_hash(tmp_path) == before


def test_import_pose_disk_full(tmp_path: Path) -> None:
    export_pose(pose_h5(tmp_path / "p.h5", frames=300), tmp_path / "poses")
    before = tree_hash(tmp_path)
    with small_tmpfs(free=24 << 10) as full:
        proc = run_cli("sldata", "import-pose", tmp_path / "poses", "-o", full / "i.h5")
        assert proc.returncode != -signal.SIGSEGV, "import-pose crashed (PoseH5Writer on a full disk)"
        one_line_error(proc, "no space left on device")
        assert sorted(p.name for p in full.iterdir()) == ["filler"]
    assert tree_hash(tmp_path) == before


def test_output_below_a_regular_file(tmp_path: Path) -> None:
    src = pose_h5(tmp_path / "p.h5")
    export_pose(src, tmp_path / "poses")
    (tmp_path / "f").write_text("a file")
    before = tree_hash(tmp_path)
    for args in (["render", src, "clip", "-o", tmp_path / "f" / "x.png"],
                 ["render", src, "clip", "-o", tmp_path / "f" / "sub" / "x.mp4"],
                 ["export-pose", src, "-o", tmp_path / "f" / "poses"],
                 ["import-pose", tmp_path / "poses", "-o", tmp_path / "f" / "x.h5"]):
        one_line_error(invoke_cli("sldata", *args), f"{tmp_path / 'f'}", "a part of this path is a file, not a directory")
    assert tree_hash(tmp_path) == before and not leftovers(tmp_path)


def test_long_names(tmp_path: Path) -> None:
    """255 bytes fit (the temporary is shortened); 256 do not: one line, nothing left."""
    src = pose_h5(tmp_path / "p.h5")
    export_pose(src, tmp_path / "poses")
    fits = "\u00e9" * 125 + "x.mp4"  # 255 bytes in UTF-8
    assert len(fits.encode()) == 255
    proc = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / fits)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / fits).stat().st_size > 0
    too_long = "\u00e9" * 125 + "xy.png"
    for args in (["render", src, "clip", "-o", tmp_path / too_long],
                 ["import-pose", tmp_path / "poses", "-o", tmp_path / (too_long + ".h5")]):
        one_line_error(invoke_cli("sldata", *args), "file name too long")
    with PoseH5Writer(tmp_path / "long.h5") as w:
        w.add("a", known_sample(1))
        w.add("k" * 251, known_sample(1))  # 256 bytes with ".pose"
    proc = invoke_cli("sldata", "export-pose", tmp_path / "long.h5", "-o", tmp_path / "lp")
    one_line_error(proc, "file name too long")
    assert not (tmp_path / "lp").exists()  # checked before the first file is written
    assert not leftovers(tmp_path)


# --- progress, --quiet, options ---------------------------------------------------------

def test_render_quiet_and_progress_only_on_a_tty(tmp_path: Path) -> None:
    import pty

    src = pose_h5(tmp_path / "p.h5", frames=40)
    for extra in ([], ["--quiet"], ["-q"]):
        proc = invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "a.gif", *extra)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # not a TTY: no bar

    def on_tty(*extra: str) -> str:
        master, slave = pty.openpty()
        try:
            proc = subprocess.run([str(BIN / "sldata"), "render", str(src), "clip", "-o", str(tmp_path / "b.mp4"),
                                   *extra], stdout=subprocess.DEVNULL, stderr=slave, timeout=300,
                                  env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
            os.close(slave)
            slave = -1
            chunks = []
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            assert proc.returncode == 0
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            os.close(master)
            if slave != -1:
                os.close(slave)

    assert "render clip" in on_tty()
    assert on_tty("--quiet") == ""


@pytest.mark.parametrize("args, needle", [
    (["--frames", "1:x"], "--frames must look like A:B"),
    (["--frames", "7:"], "the video has 6 (frames 0 to 5)"),
    (["--sheet", "0"], "--sheet 0: must be between 1 and 100"),
    (["--sheet", "101"], "--sheet 101: must be between 1 and 100"),
    (["--fps", "0"], "--fps 0.0: must be between 0.1 and 240"),
    (["--fps", "nan"], "--fps nan: must be between 0.1 and 240"),
    (["--min-conf", "1.5"], "--min-conf 1.5: must be between 0 and 1"),
    (["--size", "4x4"], "between 8 and 8192"),
])
def test_render_options_out_of_range_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    src = pose_h5(tmp_path / "p.h5")
    before = tree_hash(tmp_path)
    one_line_error(invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "x.gif", *args), needle)
    assert tree_hash(tmp_path) == before and not leftovers(tmp_path)


def test_render_fps_option(tmp_path: Path) -> None:
    from PIL import Image

    src = pose_h5(tmp_path / "p.h5")
    assert invoke_cli("sldata", "render", src, "clip", "-o", tmp_path / "a.gif", "--fps", "5").returncode == 0
    with Image.open(tmp_path / "a.gif") as im:
        assert im.info["duration"] == 200


# --- kill -9 ------------------------------------------------------------------------------

def _temporary(dst: Path, with_bytes: bool) -> bool:
    """A temporary exists (with bytes in it: the mp4's is a directory holding the encoder's file)."""
    for p in dst.iterdir():
        if TMP_MARK in p.name:
            files = list(p.iterdir()) if p.is_dir() else [p]
            if not with_bytes or any(f.stat().st_size > 0 for f in files):
                return True
    return False


@pytest.mark.parametrize("with_bytes", [False, True], ids=["temporary-created", "encoder-writing"])
def test_kill_9_mid_render_leaves_only_what_a_rerun_removes(tmp_path: Path, with_bytes: bool) -> None:
    """The mp4 encoder's work file lives inside an io temporary, so a rerun removes it."""
    out = "big.mp4"
    src = pose_h5(tmp_path / "p.h5", frames=4000, width=1280, height=720)
    before = tree_hash(tmp_path)
    dst = tmp_path / "out"
    dst.mkdir()
    proc = subprocess.Popen([str(BIN / "sldata"), "render", str(src), "clip", "-o", str(dst / out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _temporary(dst, with_bytes):
            assert proc.poll() is None, "render finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert leftovers(dst) and not (dst / out).exists()  # what the dead run left, under a temporary name
    rerun = invoke_cli("sldata", "render", src, "clip", "-o", dst / out, "--frames", ":3")
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in dst.iterdir()) == [out] and not leftovers(dst)
    assert tree_hash(tmp_path)["p.h5"] == before["p.h5"]


# --- the generic pieces added to sldata.io for these commands -----------------------------

def test_io_names_the_output_not_its_temporary(tmp_path: Path) -> None:
    """ENOSPC from a write has no file name; a refused open names the temporary: both name the output."""
    import errno

    from sldata.io import atomic_path, check_name, make_parent

    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "x.png", kind="file") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert info.value.filename == str(tmp_path / "x.png")
    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "y.png", kind="file") as tmp:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp))
    assert info.value.filename == str(tmp_path / "y.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("a file")
    with pytest.raises(NotADirectoryError) as nd:
        make_parent(tmp_path / "f" / "x.png")
    assert nd.value.filename == str(tmp_path / "f")
    with pytest.raises(OSError) as long:
        check_name(tmp_path / ("x" * 256))
    assert long.value.errno == errno.ENAMETOOLONG
    check_name(tmp_path / ("x" * 255))


def test_a_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    from sldata.io import output_lock

    src = pose_h5(tmp_path / "p.h5")
    export_pose(src, tmp_path / "poses")
    for args, out in ((["render", src, "clip", "-o", tmp_path / "x.gif"], tmp_path / "x.gif"),
                      (["import-pose", tmp_path / "poses", "-o", tmp_path / "i.h5"], tmp_path / "i.h5"),
                      (["export-pose", src, "-o", tmp_path / "again"], tmp_path / "again")):
        with output_lock(out, "test"):  # a run in progress (this process) holds the output
            one_line_error(run_cli("sldata", *args), "another run is writing this", f"pid {os.getpid()}")
        assert not out.exists()
