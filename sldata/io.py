"""Where every file of this toolkit is born, and how inputs are read safely.

One home for the output rule and for durability, used by every writer:

* `atomic_path`: an output is written under a temporary sibling name, fsynced
  (file, or every file of a directory tree), renamed onto its final name, and
  the parent directory is fsynced, so a kill or a power cut never leaves a
  half-written output under the real name.
* `check_output`: an output never names an input (symlinks and hard links
  included), never replaces a directory by a file, and replaces a non-empty
  directory only with the command's `--overwrite` and only when it holds
  nothing but that command's own output.
* `tmp_name` / `remove_stale_temporaries`: temporary names fit the 255-byte
  file-name limit and record host and pid, so a rerun removes what a dead run
  left and never what a live one is writing.
* `output_lock`: a second concurrent run on the same output is refused (exit 2)
  with the holder named.
* `reading`: a failed read (a garbled compressed chunk, an I/O error) becomes a
  `DataError` naming file, video and clip.
* JSON: one reader (integers of any size kept, duplicate keys refused, deep
  nesting a message) and one writer; restricted unpickling for pose pkls.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from .errors import DataError, UnsafePickleError, UserError

TMP_MARK = ".sldata-tmp-"
NAME_MAX = 255  # bytes in one path component on every file system our users have
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()
#: A temporary of another host cannot be checked for a live writer; it counts as stale
#: once it has not changed for this long (a writer touches its temporary as it goes).
FOREIGN_STALE_S = 24 * 3600
#: A temporary may end in its output's extension, for writers that pick the format from the
#: name (OpenCV's video writer): at most this many bytes, `.` included.
TMP_EXT_MAX = 8
_SUFFIX_ROOM = len(TMP_MARK) + 8 + 1 + 10 + 1 + 8 + TMP_EXT_MAX  # host-pid-random.ext
_LIVE: set[str] = set()  # temporaries this process is writing right now


# --- names ------------------------------------------------------------------------------

def text_name(name: str | os.PathLike) -> str:
    """A file name as valid UTF-8 text: undecodable bytes become `\\xNN`.

    Python maps a non-UTF-8 name to lone surrogates, which no JSON encoder, terminal
    or HDF5 name accepts; this is the one printable form used for keys and reports.
    """
    s = os.fspath(name)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _short(name: str, room: int) -> str:
    """`name` cut (with a hash of the whole) so that its UTF-8 form takes at most `room` bytes."""
    raw = os.fsencode(name)
    if len(raw) <= room:
        return name
    digest = hashlib.blake2b(raw, digest_size=6).hexdigest()
    return os.fsdecode(raw[: room - len(digest) - 1]) + "~" + digest


def _tmp_prefix(path: Path) -> str:
    return _short(path.name, NAME_MAX - _SUFFIX_ROOM) + TMP_MARK


def _abs(path: str | os.PathLike) -> Path:
    """`path` made absolute and normalised: `.` and `a/..` get a real name and one spelling."""
    return Path(os.path.abspath(os.fspath(path)))


def tmp_name(path: str | os.PathLike, ext: str = "") -> Path:
    """A sibling name that is clearly unfinished, unique per writer, and fits NAME_MAX.

    ext: an extension the temporary ends in (`.mp4`), for writers that choose the
    format by the file name.
    """
    if ext and not _TMP_EXT.fullmatch(ext):
        raise ValueError(f"temporary extension {ext!r}: '.' and 1 to {TMP_EXT_MAX - 1} letters or digits")
    path = _abs(path)
    return path.with_name(f"{_tmp_prefix(path)}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a temporary or lock file of this toolkit (scanners skip them)."""
    name = os.path.basename(os.fspath(path))
    return TMP_MARK in name or name.endswith(LOCK_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TMP_EXT = re.compile(r"\.[A-Za-z0-9]{1,%d}" % (TMP_EXT_MAX - 1))
_TMP_TAIL = re.compile(r"(?:([0-9a-f]{8})-)?(\d+)-[0-9a-f]{8}(?:%s)?$" % _TMP_EXT.pattern)


def _is_stale(p: Path, tail: str) -> bool:
    m = _TMP_TAIL.match(tail)
    if m is None:
        return False  # not one of ours
    host, pid = m.group(1), int(m.group(2))
    if str(p) in _LIVE:
        return False
    if host is None or host == _HOST:
        return pid == os.getpid() or not _pid_alive(pid)
    try:
        return time.time() - p.lstat().st_mtime > FOREIGN_STALE_S
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temporaries(path: str | os.PathLike, *more: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of `path` (and of `more`, outputs of the same folder) that dead
    runs left, in one scan of the folder; return what was removed.

    A temporary of a live process on this host is never touched (it may be a
    concurrent run); one of another host only after FOREIGN_STALE_S untouched.
    One scan for many outputs: an extract-pose folder holds 10^5 pkls, and each
    run cleans up after the videos it was given.
    """
    targets = [_abs(p) for p in (path, *more)]
    folder = targets[0].parent
    prefixes: set[str] = set()
    for t in targets:
        if t.parent != folder:
            raise ValueError(f"{t}: not in {folder}")
        prefixes |= {_tmp_prefix(t), t.name + TMP_MARK}  # the second: names of earlier versions
    return _remove_stale(folder, prefixes.__contains__)


def remove_stale_temporaries_in(folder: str | os.PathLike) -> list[Path]:
    """Remove every temporary in `folder` that a dead run left, whatever output it was for
    (a folder of parts written only under the output's lock)."""
    return _remove_stale(_abs(folder), lambda head: True)


def _remove_stale(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """One scan of `folder`: remove the stale temporaries whose name up to the mark `wanted` accepts."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for e in entries:
        cut = e.name.find(TMP_MARK) + len(TMP_MARK)
        if cut >= len(TMP_MARK) and wanted(e.name[:cut]) and _is_stale(Path(e.path), e.name[cut:]):
            _remove(Path(e.path))
            removed.append(Path(e.path))
    return removed


# --- durability -------------------------------------------------------------------------

def fsync_path(path: str | os.PathLike) -> None:
    """Flush one file or directory to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory's entries (a rename is durable only once its directory is)."""
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fsync_path(path)


def fsync_tree(root: str | os.PathLike, done: Iterable[str | os.PathLike] = ()) -> None:
    """fsync every file (but those in `done`) and every directory under `root`."""
    skip = {os.fspath(p) for p in done}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            if p not in skip and not os.path.islink(p):
                fsync_path(p)
        fsync_dir(dirpath)


# --- the output rule --------------------------------------------------------------------

def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    try:
        return child.resolve().is_relative_to(parent.resolve())
    except (OSError, RuntimeError):
        return False


def check_output(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                 kind: str | None = None, overwrite: bool = True,
                 owned: Callable[[Path], bool] | None = None) -> None:
    """Refuse (UserError, exit 2) an output that would destroy something the user owns.

    * `path` is one of `inputs` (same file by device and inode: symlinks and hard
      links count), or a directory that contains one of them;
    * `path` is a directory and the output is a file (`kind="file"`), or `path`
      is not a directory and the output is one (`kind="dir"`);
    * `path` is a non-empty directory and either `overwrite` is off or `owned`
      does not recognise it as this command's own earlier output.
    `kind=None` means not known yet (atomic_path checks again before renaming).
    A directory output may not be the current directory or one above it (the
    rename would pull the working directory from under the user's shell).
    """
    path = Path(path)
    ins = [Path(p) for p in inputs]
    if kind == "dir":
        here = Path.cwd()
        if here == _abs(path) or here.is_relative_to(_abs(path)):
            raise UserError(f"{text_name(path)}: is the current directory (or holds it); "
                            "name a new directory for the output")
    for inp in ins:
        if _same(path, inp):
            raise UserError(f"{text_name(path)}: this output is the input {text_name(inp)}; "
                            "choose another output path (inputs are never overwritten)")
    if not os.path.lexists(path):
        return
    is_dir = path.is_dir() and not path.is_symlink()
    if is_dir:
        for inp in ins:
            if _inside(inp, path):
                raise UserError(f"{text_name(path)}: this output directory holds the input "
                                f"{text_name(inp)}; choose another output path")
    if kind == "file" and is_dir:
        raise UserError(f"{text_name(path)} is a directory; an output file never replaces a directory")
    if kind == "dir" and not is_dir:
        raise UserError(f"{text_name(path)} exists and is not a directory")
    if kind == "dir" and any(True for _ in os.scandir(path)):
        if not overwrite:
            raise UserError(f"{text_name(path)} exists and is not empty (--overwrite replaces it)")
        if owned is None or not owned(path):
            raise UserError(f"{text_name(path)} holds files that this command did not write; "
                            "refusing to replace it (choose another output path)")
    if kind != "dir" and not is_dir and not overwrite:
        raise UserError(f"{text_name(path)} already exists")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True,
                inputs: Iterable[str | os.PathLike] = (), kind: str | None = None,
                owned: Callable[[Path], bool] | None = None, ext: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success fsync it and rename it onto `path`.

    Works for files and directories (the caller creates the one it wants at the
    yielded path). `ext`: the temporary ends in it (see `tmp_name`). Stale
    temporaries of `path` from dead runs are removed first.
    The output rule (`check_output`) is applied before any work and again
    before the rename. On any exception the temporary is removed and `path` is
    untouched.
    """
    path = Path(path)
    inputs = list(inputs)
    check_output(path, inputs=inputs, kind=kind, overwrite=overwrite, owned=owned)
    check_name(path)
    make_parent(path)
    remove_stale_temporaries(path)
    tmp = tmp_name(path, ext)
    _LIVE.add(str(tmp))
    try:
        yield tmp
        made = "dir" if tmp.is_dir() and not tmp.is_symlink() else "file"
        check_output(path, inputs=inputs, kind=made, overwrite=overwrite, owned=owned)
        if made == "dir":
            fsync_tree(tmp)
        elif not tmp.is_symlink():
            fsync_path(tmp)
        if made == "dir" and path.is_dir() and not path.is_symlink():
            # os.replace cannot replace a non-empty directory: move the old one aside first
            # (check_output allowed it: --overwrite, and it holds only our own output).
            old = tmp_name(path)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            _remove(old)
        else:
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            _name_output(exc, path, tmp)
        raise
    finally:
        _LIVE.discard(str(tmp))


def check_name(path: str | os.PathLike) -> None:
    """ENAMETOOLONG (naming the file) before any work when the output's name cannot exist."""
    if len(os.fsencode(Path(path).name)) > NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), os.fspath(path))


def make_parent(path: str | os.PathLike) -> None:
    """Create the parent directories of an output; a regular file on the way is ENOTDIR.

    (`mkdir` says EEXIST, "already exists", when the parent itself is a file,
    which reads as if the output existed.)
    """
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), os.fspath(parent)) from None


def _name_output(exc: OSError, path: Path, tmp: Path) -> None:
    """Let an environment error name the output, not nothing or its temporary.

    A write on a full disk raises ENOSPC without a file name, and an open that
    is refused names the temporary; the user knows the output's name.
    """
    if exc.errno is None:
        return  # h5py's errors carry the name in their text
    name = exc.filename
    if name is None or os.fsdecode(name).startswith(str(tmp)):
        exc.filename = os.fspath(path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, **rule: Any) -> None:
    """Write a whole file atomically (see `atomic_path` for `rule`)."""
    with atomic_path(path, kind="file", **rule) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


# --- one writer at a time ---------------------------------------------------------------

LOCK_SUFFIX = ".sldata-lock"


def lock_path(path: str | os.PathLike, inside: bool = False) -> Path:
    """The lock file of an output: a hidden sibling, so renaming the output leaves it alone.

    `inside=True` (an output directory written in place, such as a training run's
    out_dir): the lock lives in the directory itself, so only it must be writable.
    """
    path = _abs(path)
    if inside:
        return path / LOCK_SUFFIX
    return path.with_name("." + _short(path.name, NAME_MAX - len(LOCK_SUFFIX) - 1) + LOCK_SUFFIX)


_HELD: set[int] = set()  # lock file descriptors this process holds


def _drop_locks_in_child() -> None:
    """A forked worker must not share its parent's locks: an orphaned worker would keep
    the output locked after the parent died. Closing its copy releases nothing in the parent."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return (f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}: "
                f"{info.get('command', '')}").rstrip(": ")
    except (OSError, ValueError):
        return "another process"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, what: str = "output", inside: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `path` (an output) for the duration; refuse if held.

    flock on a hidden file (see `lock_path`): released by the kernel when the
    holder dies, so a killed run never blocks its rerun (forked workers drop
    their copy). On a file system without locks (ENOLCK, EOPNOTSUPP) the run
    goes on unlocked.
    """
    path = Path(path)
    lock = lock_path(path, inside)
    make_parent(lock)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # name the output the user gave, not its hidden lock file
            exc.filename = os.fspath(path)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(f"{text_name(path)}: another run is writing this {what} ({holder}); "
                            "wait for it to finish or stop it") from None
        except OSError as exc:
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                yield
                return
            os.close(fd)
            raise
        try:  # a finishing holder unlinks the file: make sure ours is still the one on disk
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300]}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info, ensure_ascii=True).encode(), 0)
    except OSError:
        pass  # the holder's name is a courtesy; the lock is what matters
    _HELD.add(fd)
    try:
        yield
    finally:
        _HELD.discard(fd)
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


# --- reading ----------------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.contextmanager
def reading(path: str | os.PathLike, video: str | None = None, clip: str | None = None) -> Iterator[None]:
    """Turn a failed read inside the block into a DataError naming file, video and clip.

    h5py reports a garbled compressed chunk, a truncated file or an I/O error as
    OSError (or RuntimeError for some filter failures), without the file name.
    """
    try:
        yield
    except DataError:
        raise
    except (OSError, RuntimeError) as exc:
        raise DataError(f"cannot read: {_first_line(exc)}", path=path, video=video, clip=clip) from exc


# --- JSON -------------------------------------------------------------------------------

def _has_nonfinite(obj: Any) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(_has_nonfinite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_nonfinite(v) for v in obj)
    return False


def dumps_json(obj: Any, *, indent: bool = True) -> bytes:
    """orjson where it is exact; the standard library where orjson would change the data.

    orjson turns NaN/Inf (bare `NaN` in files written by pandas or json.dump) into
    null and refuses integers beyond 64 bits: such data goes through `json`, so a
    rewritten annotation keeps every value it had.
    """
    if not _has_nonfinite(obj):
        opts = orjson.OPT_INDENT_2 if indent else 0
        try:
            return orjson.dumps(obj, option=opts | orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError as exc:
            if "Integer exceeds" not in str(exc):
                raise
    return json.dumps(obj, indent=2 if indent else None, ensure_ascii=False).encode("utf-8", "surrogateescape")


def write_json(path: str | os.PathLike, obj: Any, **rule: Any) -> None:
    write_bytes_atomic(path, dumps_json(obj) + b"\n", **rule)


class JsonError(UserError):
    """A JSON file that does not parse; carries the file for located messages."""

    def __init__(self, path: Path, message: str):
        super().__init__(f"{text_name(path)}: invalid JSON: {message}")
        self.path = path
        self.detail = message


class DuplicateKeyError(JsonError):
    """A JSON object that holds the same key twice: a reader would silently keep one."""

    def __init__(self, path: Path, key: str, where: list[str]):
        loc = "/".join(where) if where else "top level"
        super().__init__(path, f"key {key!r} occurs twice in the object at {loc}")
        self.key = key
        self.where = where


class _Duplicate(ValueError):
    def __init__(self, key: str, obj: list[tuple[str, Any]]):
        super().__init__(key)
        self.key = key
        self.obj = obj


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Duplicate(k, pairs)
            seen.add(k)
    return d


def _constant(name: str) -> float:
    return math.nan if name == "NaN" else (math.inf if name == "Infinity" else -math.inf)


class _Marked(dict):
    """The object in which a duplicate key was seen (found again by `_locate`)."""


def _locate(data: bytes | str, key: str) -> list[str]:
    """The keys leading to the first object that repeats `key` (for the message)."""
    def mark(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        return _Marked(pairs) if keys.count(key) > 1 else dict(pairs)

    def search(o: Any, trail: list[str]) -> list[str] | None:
        if isinstance(o, _Marked):
            return trail
        items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else ()
        for k, v in items:
            hit = search(v, trail + [str(k)])
            if hit is not None:
                return hit
        return None

    try:
        return search(json.loads(data, object_pairs_hook=mark, parse_constant=_constant), []) or []
    except (ValueError, RecursionError):
        return []


def loads_json(data: bytes | str, path: Path | None = None) -> Any:
    """Parse JSON exactly: integers of any size, key order, bare NaN kept; repeats refused.

    The standard library parser with a pairs hook is as fast as orjson on annotation
    files and, unlike it, sees a key that occurs twice (orjson keeps the last one
    silently) and keeps integers beyond 64 bits. Nesting too deep for the parser is
    a JsonError, not a RecursionError.
    """
    where = path or Path("<bytes>")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_constant)
    except _Duplicate as dup:
        raise DuplicateKeyError(where, dup.key, _locate(data, dup.key)) from None
    except RecursionError:
        raise JsonError(where, "nested too deeply to parse") from None
    except UnicodeDecodeError as exc:
        raise JsonError(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise JsonError(where, str(exc)) from None


def read_input_bytes(path: Path, expected: str, missing: str = "no such file") -> bytes:
    """The bytes of an input file; a missing file or a directory is a UserError (exit 2)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{text_name(path)}: {missing}") from None
    except IsADirectoryError:
        raise UserError(f"{text_name(path)}: is a directory, expected {expected}") from None


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    return loads_json(read_input_bytes(path, "a JSON file"), path)


# --- restricted unpickling -------------------------------------------------------

_SAFE_GLOBALS = {
    ("builtins", name)
    for name in ("dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str",
                 "int", "float", "complex", "bool", "slice", "range")
} | {
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
} | {
    (mod, name)
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    (mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refused to load {module}.{name}: pose pkls may hold only numpy arrays and plain "
            "Python containers"
        )


def safe_unpickle(path: str | os.PathLike) -> Any:
    """Unpickle a file allowing only numpy arrays and plain containers (runs no code)."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise UserError(f"{path}: not a readable pickle ({type(exc).__name__}: {exc})") from None
