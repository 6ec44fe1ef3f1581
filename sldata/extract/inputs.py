"""Which videos a run does: discovery, a frozen `--list`, and the job-array split.

A job array's task must never depend on which *other* videos exist: a video
added between two array tasks would otherwise shift every later index and some
videos would be done twice, others never. So each video's task is decided by a
stable hash of its path relative to the input root alone (`shard_of`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..io import TMP_MARK, text_name

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".webm")


def relative_name(video: Path, root: Path) -> str:
    """The video's path relative to the input root (posix); a single-file input is its name."""
    return video.relative_to(root).as_posix() if root.is_dir() else video.name


def discover_videos(root: str | Path) -> list[Path]:
    """Every video under `root` (recursive), sorted by relative path; `root` may be one video."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTS:
            raise UserError(f"{text_name(str(root))}: not a video ({', '.join(VIDEO_EXTS)})")
        return [root]
    if not root.is_dir():
        raise UserError(f"{text_name(str(root))}: no such file or directory")
    found = [p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file()
             and TMP_MARK not in p.name]
    if not found:
        raise UserError(f"{text_name(str(root))}: no videos ({', '.join(VIDEO_EXTS)}) found")
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_video_list(list_file: str | Path, root: str | Path) -> list[Path]:
    """The videos named in `list_file`: one path per line, relative to `root` or absolute under it.

    Blank lines and lines starting with `#` are skipped; names are bytes on disk
    (any encoding a file system allows), so the file is read as bytes. Listed
    videos that do not exist are kept: the run records them as failures.
    """
    list_file, root = Path(list_file), Path(root)
    if not root.is_dir():
        raise UserError(f"--list needs VIDEOS to be the folder its paths are relative to; "
                        f"{text_name(str(root))} is not a directory")
    try:
        data = list_file.read_bytes()
    except FileNotFoundError:
        raise UserError(f"--list {text_name(str(list_file))}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--list {text_name(str(list_file))}: is a directory, expected a text file") from None
    videos: dict[str, Path] = {}
    base = Path(os.path.abspath(root))
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        raw = raw.rstrip(b"\r")
        if not raw.strip() or raw.lstrip().startswith(b"#"):
            continue
        entry = Path(os.fsdecode(raw))
        try:  # lexically: `a/../b` is `b`; an absolute path must be written under VIDEOS as given
            rel = Path(os.path.abspath(base / entry)).relative_to(base)
        except ValueError:
            rel = Path("..")
        if rel.parts[:1] == ("..",) or not rel.parts:
            raise UserError(f"--list {text_name(str(list_file))}:{lineno}: {text_name(str(entry))} is not under "
                            f"{text_name(str(root))} (paths are relative to VIDEOS, or absolute under it)")
        if rel.suffix.lower() not in VIDEO_EXTS:
            raise UserError(f"--list {text_name(str(list_file))}:{lineno}: {text_name(str(entry))} is not a video "
                            f"({', '.join(VIDEO_EXTS)})")
        videos.setdefault(rel.as_posix(), root / rel)
    if not videos:
        raise UserError(f"--list {text_name(str(list_file))}: lists no videos")
    return [videos[k] for k in sorted(videos)]


def shard_of(relative: str, num_shards: int) -> int:
    """The job-array task of a video: the first 8 bytes of blake2b(relative path, UTF-8) mod K.

    Depends on nothing but the path and K, so adding or removing other videos never
    moves a video to another task; undecodable names hash their original bytes.
    """
    digest = hashlib.blake2b(relative.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % num_shards


def check_shard_args(num_shards: int, shard_index: int) -> None:
    if num_shards < 1:
        raise UserError(f"--num-shards must be at least 1, not {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise UserError(f"--shard-index must be in [0, {num_shards - 1}], not {shard_index}")


def shard_videos(videos: Sequence[Path], num_shards: int, shard_index: int, root: Path | None = None) -> list[Path]:
    """The videos of task `shard_index` of `num_shards` (by `shard_of` of the path relative to `root`).

    Tasks are disjoint and cover every video; sizes are balanced on average, not exactly.
    """
    check_shard_args(num_shards, shard_index)
    if num_shards == 1:
        return list(videos)

    def rel(v: Path) -> str:
        return v.as_posix() if root is None else relative_name(v, root)

    return [v for v in videos if shard_of(rel(v), num_shards) == shard_index]


def stem_collisions(videos: Sequence[Path]) -> dict[str, list[Path]]:
    """Stems shared by several videos: they would write the same pkl and h5 key."""
    by_stem: dict[str, list[Path]] = {}
    for v in videos:
        by_stem.setdefault(v.stem, []).append(v)
    return {s: vs for s, vs in by_stem.items() if len(vs) > 1}


def check_stems(videos: Sequence[Path], root: Path) -> None:
    clashes = stem_collisions(videos)
    if clashes:
        lines = [f"  {text_name(stem)}: {', '.join(text_name(relative_name(p, root)) for p in paths)}"
                 for stem, paths in sorted(clashes.items())]
        more = f"\n  ... and {len(lines) - 20} more" if len(lines) > 20 else ""
        raise UserError(f"{len(clashes)} video name(s) occur more than once; each video's pkl is named by "
                        "its stem, so rename them first:\n" + "\n".join(lines[:20]) + more)
