"""Errors the CLI turns into a message and exit code 2 (never a traceback)."""

from __future__ import annotations

import errno
import os
import re


class UserError(Exception):
    """An input or option that cannot be used at all (exit code 2)."""


class UnsafePickleError(UserError):
    """A pkl asked to load something beyond numpy arrays and plain containers."""


class BadItemError(UserError):
    """One item's data breaks the format; `code` is the finding code (sldata.findings.CODES)
    under which a per-item loop records it (exit 2 where the item is all the command has)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    def __reduce__(self):  # survive pickling across worker processes
        return (type(self), (self.code, str(self)))


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


#: Which extra brings a module that only some commands need (pyproject.toml).
EXTRA_OF = {
    "mediapipe": "extract", "cv2": "look", "matplotlib": "look", "PIL": "look",
    "torch": "train", "tensorboard": "train", "transformers": "llava", "sacrebleu": "llava",
    "tokenizers": "llava", "safetensors": "llava", "pose_format": "pose-format", "ray": "ray",
}


def describe_missing_module(exc: ModuleNotFoundError) -> str | None:
    """The install hint for a module an extra provides; None for any other (a real bug)."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return (f"this command needs the '{extra}' extra ({top} is not installed): "
            f"pip install 'sldata[{extra}]'")


def require_extra(extra: str, *modules: str) -> None:
    """Refuse (exit 2, before any work) a command whose extra is not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"this command needs the '{extra}' extra ({', '.join(missing)} not installed): "
                        f"pip install 'sldata[{extra}]'")
