"""Errors the CLI turns into a message and exit code 2 (never a traceback)."""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
    """An input or option that cannot be used at all (exit code 2)."""


class UnsafePickleError(UserError):
    """A pkl asked to load something beyond numpy arrays and plain containers."""


class DataError(UserError):
    """Data that cannot be read (a garbled compressed chunk, an I/O error), located.

    Carries the file, video and clip so a per-item loop can record it as that
    item's failure, and the CLI can print it as one line.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None,
                 video: str | None = None, clip: str | None = None):
        from .io import text_name

        self.path = None if path is None else os.fspath(path)
        self.video = video
        self.clip = clip
        self.reason = message
        where = text_name(self.path) if self.path is not None else ""
        if video is not None:
            where += f" video {text_name(video)!r}" if where else f"video {text_name(video)!r}"
        if clip is not None:
            where += f" clip {clip!r}"
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self):  # survive pickling across worker processes
        return (type(self), (self.reason, self.path, self.video, self.clip))


_ERRNO_TEXT = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "a part of this path is a file, not a directory",
    errno.EISDIR: "is a directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
    errno.ENOTEMPTY: "directory not empty",
    errno.EXDEV: "cannot move across file systems",
}
#: h5py reports HDF5's failures as OSError without errno or filename; both are in the text.
_H5_NAME = re.compile(r"name = '([^']*)'")
_H5_ERRNO = re.compile(r"errno = (\d+)")


def describe_os_error(exc: OSError) -> str:
    """One line for an environment error: the file, then what went wrong."""
    from .io import text_name

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    code = exc.errno
    name = exc.filename
    if code is None:
        m = _H5_ERRNO.search(text)
        code = int(m.group(1)) if m else None
    if name is None:
        m = _H5_NAME.search(text)
        name = m.group(1) if m else None
    what = _ERRNO_TEXT.get(code) if code is not None else None
    if what is None:
        what = exc.strerror if exc.strerror else text
    where = text_name(name) if name is not None else None
    if exc.filename2 is not None:
        where = f"{where} -> {text_name(exc.filename2)}"
    return f"{where}: {what}" if where else what
