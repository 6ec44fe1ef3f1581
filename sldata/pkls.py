"""Finding per-video pose pkls: the one rule every command uses.

pkl2h5, validate (layout detection and the pkl check), `validate --videos`,
render and extract-pose all find pkls here, so a folder means the same set of
videos to each of them:

* a pkl is a regular file whose name ends in `.pkl` (lower case, as OpenHands and
  extract-pose write them; `x.PKL` is not one), found recursively, following
  symbolic links to folders (a link loop is walked once);
* temporaries and lock files of this toolkit (`sldata.io.is_temporary`) never count:
  they are what a killed run left;
* its key is its stem as valid UTF-8 (`sldata.io.text_name`: undecodable bytes
  become `\\xNN`): the pose h5 key pkl2h5 gives it, whatever subfolder it is in;
* a subfolder that cannot be listed is returned in `unreadable` so that each
  command records it as a failure (never silently fewer videos); a root that
  cannot be listed is the command's error (OSError, exit 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .io import is_temporary, text_name

SUFFIX = ".pkl"


def is_pkl_name(name: str) -> bool:
    """A file name the rule counts as a pkl (a temporary of one is not)."""
    return name.endswith(SUFFIX) and not is_temporary(name)


def pkl_key(path: str | os.PathLike) -> str:
    """The video key of a pkl: its stem as valid UTF-8 text."""
    name = os.path.basename(os.fspath(path))
    return text_name(name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem)


def pkl_path(folder: str | os.PathLike, stem: str) -> Path:
    """Where the pkl of the video with stem `stem` lives in a flat pose folder (extract-pose's output)."""
    return Path(folder) / f"{stem}{SUFFIX}"


@dataclass
class PklScan:
    """The pkls under a root (sorted by their path relative to it) and the folders that could not be listed."""

    root: Path
    files: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, OSError]] = field(default_factory=list)

    def rel(self, path: Path) -> str:
        """`path` relative to the root, as valid UTF-8 posix text (a single-file root: its name)."""
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = str(path)
        return text_name(path.name if rel == "." else rel)


def find_pkls(root: str | os.PathLike) -> PklScan:
    """Every pkl under `root` by the rule above; `root` may also be one pkl file."""
    root = Path(root)
    scan = PklScan(root)
    if root.is_file():
        scan.files = [root]
        return scan
    os.scandir(root).close()  # the root itself cannot be listed: the caller's error, not a finding

    def failed(exc: OSError) -> None:
        scan.unreadable.append((Path(exc.filename) if exc.filename else root, exc))

    found = [Path(dirpath) / n for dirpath, names in _walk(root, failed) for n in names if is_pkl_name(n)]
    scan.files = sorted((p for p in found if p.is_file()), key=scan.rel)
    scan.unreadable.sort(key=lambda u: scan.rel(u[0]))
    return scan


def has_pkls(root: str | os.PathLike) -> bool:
    """Any pkl under the folder `root` (stops at the first; unreadable subfolders are skipped)."""
    return any(is_pkl_name(n) for _, names in _walk(Path(root), None) for n in names)


def _walk(root: Path, onerror: Callable[[OSError], None] | None) -> Iterator[tuple[str, list[str]]]:
    """(folder, file names) under `root`, following links to folders, each folder once (no link loops)."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, names in os.walk(root, onerror=onerror, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        yield dirpath, names
