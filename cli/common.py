"""What every command shares: error handling (exit 2, no traceback), console, progress."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

class _Console(Console):
    """A console on which a path or key that looks like markup (`a[/]b`) never crashes a summary."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from rich.errors import MarkupError

        try:
            super().print(*objects, **kwargs)
        except MarkupError:  # rendered before anything is written: print it again as plain text
            saved, self._markup = self._markup, False  # tables render titles and cells through it too
            try:
                super().print(*objects, **{**kwargs, "markup": False})
            finally:
                self._markup = saved


console = _Console(emoji=False)  # ":a:" in a key or path is text, not an emoji
err_console = _Console(stderr=True, emoji=False)


def fail(message: str, code: int = 2) -> "typer.Exit":
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def safe_streams() -> None:
    """stdout/stderr never crash on a name that is not UTF-8: odd bytes print as escapes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a closed or detached stream: nothing to protect
                pass


def user_errors(fn: F) -> F:
    """The error boundary of every command: one line and the documented exit code.

    UserError (bad input or option) and the environment's errors (OSError by errno:
    permission, disk full, a path below a file, a name too long, a read-only file
    system, an HDF5 read or filter failure) exit 2 with a message naming the file;
    input nested too deeply exits 2; a module of a missing extra (torch, mediapipe,
    ...) exits 2 with the `pip install 'sldata[EXTRA]'` line; Ctrl-C exits 130. Anything else is a bug and
    keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.markup import escape

        from sldata.errors import UserError, describe_missing_module, describe_os_error

        safe_streams()
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise fail(escape(str(exc))) from None  # a message is text, never rich markup
        except KeyboardInterrupt:
            raise fail("interrupted; outputs written so far are complete, rerun to resume", 130) from None
        except BrokenPipeError:  # `sldata ... | head`: the reader left, nothing to report
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (interpreter exit flushes it)
            raise typer.Exit(0) from None
        except OSError as exc:
            raise fail(escape(describe_os_error(exc))) from None
        except ModuleNotFoundError as exc:
            hint = describe_missing_module(exc)
            if hint is None:
                raise
            raise fail(escape(hint)) from None
        except RecursionError:
            raise fail("an input is nested too deeply to process (e.g. a JSON file with "
                       "thousands of nested brackets)") from None

    return wrapper  # type: ignore[return-value]


class RichProgress:
    """sldata.progress.Progress on a rich progress bar; silent when not a TTY or --quiet."""

    def __init__(self, quiet: bool = False):
        self.enabled = not quiet and sys.stderr.isatty()
        self._bar = None
        self._task = None

    def start(self, description: str, total: float | None = None, unit: str = "items") -> None:
        if not self.enabled:
            return
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

        if self._bar is not None:
            self._bar.stop()
        count = [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn(), TextColumn(unit)]
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), *count,
                             TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=err_console, transient=True)
        self._bar.start()
        self._task = self._bar.add_task(description, total=total, info="")

    def advance(self, n: float = 1, **info: object) -> None:
        if self._bar is not None and self._task is not None:
            text = " ".join(f"{k}={v}" for k, v in info.items())
            self._bar.update(self._task, advance=n, **({"info": text} if info else {}))

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None


def human_bytes(n: int | None) -> str:
    """Decimal units, compact enough for table columns: `13.1MB`."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1000
    return f"{n} B"


def split_csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def print_json(obj: Any) -> None:
    """Indented JSON on stdout; names that are not UTF-8 are written as `\\xNN` text."""
    import orjson

    opts = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
    try:
        data = orjson.dumps(obj, option=opts)
    except orjson.JSONEncodeError:
        from sldata.io import dumps_json

        data = dumps_json(_texts(obj))
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.flush()


def _texts(obj: Any) -> Any:
    from sldata.io import text_name

    if isinstance(obj, str):
        return text_name(obj)
    if isinstance(obj, dict):
        return {_texts(k): _texts(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_texts(v) for v in obj]
    return obj
