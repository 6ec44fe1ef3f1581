"""Per-process lazy HDF5 handles: safe under fork and spawn DataLoader workers.

A handle opened in one process is never used in another: the cache is keyed by
pid and dropped (not closed: the parent still owns it) after a fork, and it is
not pickled for spawn.

`isolated` runs HDF5 writing in a child process, so that a failed write (disk
full) becomes an exception for the caller instead of a crash at close.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class H5Pool:
    """A small LRU of read-only h5py.File handles, reopened lazily in each process."""

    def __init__(self, max_open: int = 64):
        self.max_open = max_open
        self._pid = os.getpid()
        self._files: OrderedDict[str, Any] = OrderedDict()

    def get(self, path: str | Path):
        import h5py

        if self._pid != os.getpid():  # forked: the inherited handles belong to the parent
            self._files = OrderedDict()
            self._pid = os.getpid()
        key = str(path)
        f = self._files.get(key)
        if f is not None:
            self._files.move_to_end(key)
            return f
        f = h5py.File(key, "r")
        self._files[key] = f
        while len(self._files) > self.max_open:
            _, old = self._files.popitem(last=False)
            old.close()
        return f

    def close(self) -> None:
        if self._pid == os.getpid():
            for f in self._files.values():
                try:
                    f.close()
                except Exception:
                    pass
        self._files = OrderedDict()

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_open"])


# --- writing HDF5 where a failure cannot crash the caller --------------------------------

def _send(fd: int, msg: Any) -> None:
    import pickle
    import struct

    data = pickle.dumps(msg)
    os.write(fd, struct.pack("<Q", len(data)))
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _recv(fd: int) -> Any:
    import pickle
    import struct

    def exact(n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    head = exact(8)
    if head is None:
        return None
    body = exact(struct.unpack("<Q", head)[0])
    return None if body is None else pickle.loads(body)


_H5_ERRNO = re.compile(r"errno = (\d+)")
_H5_FILE = re.compile(r"filename = '([^']*)'")


def h5_os_error(exc: BaseException) -> BaseException:
    """An HDF5 write failure as the OSError it is (errno and file name), else `exc` itself.

    h5py reports a failed write as OSError, RuntimeError or ValueError depending
    on the call, with errno and file name only in the message text.
    """
    if not isinstance(exc, (OSError, RuntimeError, ValueError)) or (isinstance(exc, OSError) and exc.filename):
        return exc
    text = str(exc)
    m = _H5_ERRNO.search(text)
    if m is None and not (isinstance(exc, OSError) and exc.errno):
        return exc
    code = int(m.group(1)) if m else exc.errno
    name = _H5_FILE.search(text)
    return OSError(code, os.strerror(code), name.group(1) if name else None)


def open_failure(exc: BaseException) -> str:
    """Why an HDF5 file could not be opened, in a few words ("permission denied", or h5py's first line)."""
    err = h5_os_error(exc)
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno).lower()
    text = str(exc).strip().splitlines()
    return f"not a readable HDF5 file ({text[0] if text else type(exc).__name__})"


def _portable(exc: BaseException) -> tuple[str, Any]:
    """An exception in a form that survives pickling (custom __init__s often do not)."""
    import pickle
    import traceback

    from .errors import UserError

    exc = h5_os_error(exc)

    try:
        pickle.loads(pickle.dumps(exc))
        return ("exc", exc)
    except Exception:
        pass
    if isinstance(exc, OSError):
        return ("exc", OSError(exc.errno, exc.strerror or str(exc), exc.filename))
    if isinstance(exc, UserError):
        return ("exc", UserError(str(exc)))
    return ("bug", "".join(traceback.format_exception(exc)))


def isolated(fn: Callable[[Callable[[float], None]], T], advance: Callable[[float], None] | None = None) -> T:
    """Run `fn(advance)` (which writes HDF5 files) in a forked child and return its result.

    Why: when a write fails (disk full, quota, I/O error) HDF5 can leave a dataset
    half-closed: H5Dclose fails while flushing its chunk cache, its ID stays
    registered with freed internals, and the next H5Fclose (or HDF5's exit
    handler) walks it in H5D_flush_all and segfaults. Python cannot undo that
    state, so the writing happens in a child that, on any failure, reports the
    exception through a pipe and exits with `os._exit` without closing anything;
    the caller gets the exception (an OSError keeps its errno and file name) and
    removes its temporary. `fn` must close its files on success and must not close
    them on failure (no `finally: f.close()`): a close after a failed write is
    the crash. Progress calls in the child reach `advance` in the parent. The
    child dies with its parent (PR_SET_PDEATHSIG), so a killed run leaves no writer.
    """
    import signal

    r, w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code, kept = 1, None
        try:
            os.close(r)
            from .workers import die_with_parent

            die_with_parent(parent)
            devnull = os.open(os.devnull, os.O_WRONLY)  # h5py's "Exception ignored" noise on failure
            os.dup2(devnull, 2)
            result = fn(lambda n=1: _send(w, ("progress", n)))
            _send(w, ("ok", result))
            code = 0
        except BaseException as exc:  # noqa: BLE001 (everything goes back to the parent)
            kept = exc  # its frames hold the HDF5 objects: freeing them would close them
            with contextlib.suppress(Exception):
                _send(w, _portable(exc))
        finally:
            os._exit(code if kept is not None or code == 0 else 1)
    os.close(w)
    outcome: Any = None
    try:
        while True:
            msg = _recv(r)
            if msg is None:
                break
            if msg[0] == "progress":
                if advance is not None:
                    advance(msg[1])
                continue
            outcome = msg
    except BaseException:
        with contextlib.suppress(Exception):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    _, status = os.waitpid(pid, 0)
    if outcome is None:
        from .errors import UserError

        why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
        raise UserError(f"the HDF5 writer process died ({why}) before finishing; nothing was renamed into place")
    kind, value = outcome
    if kind == "ok":
        return value
    if kind == "exc":
        raise value
    raise RuntimeError(f"the HDF5 writer process failed:\n{value}")

