"""Sign_LLaVA feature datasets (SPEC §2): layout detection, one reader, one writer.

v1: `annotation.SPLIT.json` + `REP.SPLIT.h5`.
v2: `annotation.SPLIT.json` + `REP/REP.SPLIT.K.h5` + `REP/metadata_REP.SPLIT.json`.
Shard paths always come from the layout (`shard_path`), never from rewriting
the metadata file's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from schemas.annotations import annotation_version, sort_clip_keys
from schemas.metadata import parse_metadata

from .errors import UserError
from .h5 import H5Pool
from .io import TMP_MARK, read_json, write_json

NAME = r"[A-Za-z0-9_-]+"
ANNOTATION_RE = re.compile(rf"^annotation\.({NAME})\.json$")
V1_FILE_RE = re.compile(rf"^({NAME})\.({NAME})\.h5$")
SHARD_RE = re.compile(rf"^({NAME})\.({NAME})\.(\d+)\.h5$")
METADATA_RE = re.compile(rf"^metadata_({NAME})\.({NAME})\.json$")


def annotation_path(root: Path, split: str) -> Path:
    return root / f"annotation.{split}.json"


def v1_path(root: Path, rep: str, split: str) -> Path:
    return root / f"{rep}.{split}.h5"


def shard_path(root: Path, rep: str, split: str, k: int) -> Path:
    return root / rep / f"{rep}.{split}.{k}.h5"


def metadata_path(root: Path, rep: str, split: str) -> Path:
    return root / rep / f"metadata_{rep}.{split}.json"


@dataclass
class Layout:
    """What is on disk: the layout kind, splits with annotations, and per-rep files."""

    root: Path
    kind: str  # "v1" | "v2"
    splits: list[str]
    reps: list[str]
    # v1: {(rep, split): path}; v2: {(rep, split): {k: path}} and metadata paths
    v1_files: dict[tuple[str, str], Path] = field(default_factory=dict)
    shards: dict[tuple[str, str], dict[int, Path]] = field(default_factory=dict)
    metadata: dict[tuple[str, str], Path] = field(default_factory=dict)


def detect_layout(root: str | Path) -> Layout | None:
    """Recognise a v1 or v2 feature dataset at `root`; None if it is neither."""
    root = Path(root)
    if not root.is_dir():
        return None
    names = sorted(p.name for p in root.iterdir() if TMP_MARK not in p.name)
    splits = [m.group(1) for n in names if (m := ANNOTATION_RE.match(n))]
    v1_files: dict[tuple[str, str], Path] = {}
    for n in names:
        m = V1_FILE_RE.match(n)
        if m and (root / n).is_file():
            v1_files[(m.group(1), m.group(2))] = root / n
    shards: dict[tuple[str, str], dict[int, Path]] = {}
    metadata: dict[tuple[str, str], Path] = {}
    unlisted: list[OSError] = []
    for n in names:
        sub = root / n
        if not sub.is_dir() or not re.fullmatch(NAME, n):
            continue
        try:
            entries = sorted(sub.iterdir())
        except PermissionError as exc:  # fatal only if this is a feature dataset (a rep dir); see below
            unlisted.append(exc)
            continue
        for p in entries:
            if TMP_MARK in p.name:
                continue
            if (m := SHARD_RE.match(p.name)) and m.group(1) == n:
                shards.setdefault((n, m.group(2)), {})[int(m.group(3))] = p
            elif (m := METADATA_RE.match(p.name)) and m.group(1) == n:
                metadata[(n, m.group(2))] = p
    if unlisted and (shards or metadata or splits):
        raise unlisted[0]  # a rep directory that cannot be listed: the layout cannot be known (exit 2)
    if shards or metadata:
        reps = sorted({r for r, _ in shards} | {r for r, _ in metadata})
        for key in shards:
            shards[key] = dict(sorted(shards[key].items()))
        return Layout(root, "v2", splits, reps, shards=shards, metadata=metadata)
    if v1_files and splits:
        reps = sorted({r for r, s in v1_files})
        return Layout(root, "v1", splits, reps, v1_files=v1_files)
    if splits:  # annotations alone: a v1 dataset whose feature files are all missing
        return Layout(root, "v1", splits, [])
    return None


def is_feature_dataset_dir(root: Path) -> bool:
    """True when `root` holds nothing but a feature dataset (what `mock` and `shard` write).

    `--overwrite` may replace such a directory; one holding anything else (a user's
    notes, videos, another tool's output) is never deleted.
    """
    from .io import is_temporary

    for p in root.iterdir():
        if is_temporary(p):
            continue
        if p.is_file() and (ANNOTATION_RE.match(p.name) or V1_FILE_RE.match(p.name)):
            continue
        if p.is_dir() and not p.is_symlink() and re.fullmatch(NAME, p.name) and all(
                is_temporary(q) or (q.is_file() and (
                    ((m := SHARD_RE.match(q.name)) and m.group(1) == p.name)
                    or ((m := METADATA_RE.match(q.name)) and m.group(1) == p.name)))
                for q in p.iterdir()):
            continue
        return False
    return True


def describe_duplicate(exc: Any, path: Path) -> str:
    """What a repeated JSON key means in an annotation or metadata file (a DuplicateKeyError)."""
    key, where = exc.key, list(exc.where)
    if not where:
        return f"video {key!r} occurs twice" + (" in the metadata" if METADATA_RE.match(path.name) else "")
    if len(where) == 1 and not METADATA_RE.match(path.name):
        return f"clip key {key!r} occurs twice in video {where[0]!r}"
    return f"key {key!r} occurs twice in the object at {'/'.join(where)}"


def clip_order(video_entry: dict[str, Any]) -> list[str]:
    """Temporal order of a video's clips: `clip_order` (v2) or numeric keys (v1)."""
    if "clip_order" in video_entry:
        return [str(c) for c in video_entry["clip_order"]]
    return sort_clip_keys(list(video_entry.keys()))


def clip_entries(video_entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in video_entry.items() if k != "clip_order"}


class SplitView:
    """One split of a dataset: videos in annotation order, clips in temporal order."""

    def __init__(self, dataset: "FeatureDataset", split: str, annotation: dict[str, Any]):
        self.dataset = dataset
        self.split = split
        self.annotation = annotation
        self._metadata: dict[str, dict[str, int]] = {}

    @property
    def videos(self) -> list[str]:
        return list(self.annotation.keys())

    def clips(self, video: str) -> list[str]:
        return clip_order(self.annotation[video])

    def clip(self, video: str, clip: str) -> dict[str, Any]:
        return self.annotation[video][clip]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for v in self.videos:
            for c in self.clips(v):
                yield v, c

    def metadata(self, rep: str) -> dict[str, int]:
        """{video: shard} for a v2 rep (read once per split view)."""
        if rep not in self._metadata:
            path = self.dataset.layout.metadata.get((rep, self.split))
            if path is None:
                raise UserError(f"no metadata for rep {rep!r} split {self.split!r} under {self.dataset.root}")
            mapping, errors = parse_metadata(read_json(path))
            if errors:
                raise UserError(f"{path}: " + "; ".join(errors))
            self._metadata[rep] = mapping
        return self._metadata[rep]

    def h5_file(self, video: str, rep: str) -> Path | None:
        """The file holding `video` for `rep`, or None when the layout has none."""
        lay = self.dataset.layout
        if lay.kind == "v1":
            path = v1_path(lay.root, rep, self.split)
            return path if path.exists() else None
        k = self.metadata(rep).get(video)
        return None if k is None else shard_path(lay.root, rep, self.split, k)

    def group(self, video: str, rep: str):
        """The open h5py group of `video` in `rep` (lazy, per-process handle)."""
        path = self.h5_file(video, rep)
        if path is None:
            raise KeyError(f"video {video!r} has no file for rep {rep!r}")
        return self.dataset.pool.get(path)[video]

    def has(self, video: str, clip: str, rep: str) -> bool:
        try:
            return clip in self.group(video, rep)
        except (KeyError, FileNotFoundError, OSError):
            return False

    def features(self, video: str, clip: str, rep: str) -> np.ndarray:
        """The (T, D) array of one clip, read in one call."""
        return self.group(video, rep)[clip][()]


class FeatureDataset:
    """A v1 or v2 feature dataset directory, opened lazily and fork/spawn safe."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        layout = detect_layout(self.root)
        if layout is None:
            raise UserError(f"{self.root}: not a feature dataset (no annotation.SPLIT.json found)")
        self.layout = layout
        self.pool = H5Pool()
        self._splits: dict[str, SplitView] = {}

    @property
    def kind(self) -> str:
        return self.layout.kind

    @property
    def splits(self) -> list[str]:
        return self.layout.splits

    @property
    def reps(self) -> list[str]:
        return self.layout.reps

    def split(self, name: str) -> SplitView:
        if name not in self._splits:
            if name not in self.layout.splits:
                raise UserError(f"{self.root}: no split {name!r} (have: {', '.join(self.splits) or 'none'})")
            raw = read_json(annotation_path(self.root, name))
            if not isinstance(raw, dict):
                raise UserError(f"{annotation_path(self.root, name)}: expected a JSON object of videos")
            self._splits[name] = SplitView(self, name, raw)
        return self._splits[name]

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> "FeatureDataset":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {"root": self.root}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["root"])


# --- writer ------------------------------------------------------------------------

class RepWriter:
    """Writes one rep of one split: a single v1 file, or v2 shards of `shard_size` videos.

    The caller stages the whole dataset in a temporary directory (see `atomic_path`);
    within it, each shard is written complete before the next begins. `add_video`
    writes arrays (mock, tests, benchmarks); `shard` writes the shard files its
    plan decided with `copy_group` instead.
    """

    def __init__(self, root: str | Path, rep: str, split: str, layout: str = "v2",
                 shard_size: int | None = None, compression: str | None = None,
                 compression_opts: Any = None):
        if layout not in ("v1", "v2"):
            raise ValueError(f"layout must be v1 or v2, not {layout!r}")
        if layout == "v2" and (shard_size is None or shard_size < 1):
            raise ValueError("v2 needs shard_size >= 1")
        self.root, self.rep, self.split, self.layout = Path(root), rep, split, layout
        self.shard_size = shard_size
        self.compression, self.compression_opts = compression, compression_opts
        self.assignment: dict[str, int] = {}
        self._file = None
        self._k = -1
        self._in_shard = 0

    def _target(self):
        import h5py

        if self._file is None or (self.layout == "v2" and self._in_shard >= self.shard_size):
            if self._file is not None:
                self._file.close()
            self._k += 1
            self._in_shard = 0
            path = (v1_path(self.root, self.rep, self.split) if self.layout == "v1"
                    else shard_path(self.root, self.rep, self.split, self._k))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(path, "w")
        return self._file

    def _register(self, video: str) -> None:
        if video in self.assignment:
            raise ValueError(f"video {video!r} written twice to {self.rep}.{self.split}")
        self.assignment[video] = max(self._k, 0)
        self._in_shard += 1

    def add_video(self, video: str, clips: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> None:
        f = self._target()
        g = f.create_group(video)
        for name, arr in clips.items():
            _close(g.create_dataset(name, data=arr, compression=self.compression,
                                    compression_opts=self.compression_opts))
        for k, v in (attrs or {}).items():
            g.attrs[k] = v
        _close(g)
        self._register(video)

    def close(self) -> dict[str, int]:
        """Close the open shard; v2 also writes the metadata file. Returns {video: shard}."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.layout == "v2":
            write_json(metadata_path(self.root, self.rep, self.split), self.assignment)
        return self.assignment


def copy_group(f: Any, video: str, src_group: Any, compression: str | None = None,
               compression_opts: Any = None) -> None:
    """Copy one video group into the open file `f` at the HDF5 level.

    Without `compression` the raw chunks are copied (H5Ocopy: no decompression;
    bytes, dtypes, attributes, chunking and filters bit-exact); with it each
    clip is read and rewritten with the new filter, attributes kept.
    """
    from .io import reading

    if compression is None:
        src_group.file.copy(src_group, f, name=video)
        return
    g = f.create_group(video)
    for k, v in src_group.attrs.items():
        g.attrs[k] = v
    for name, ds in src_group.items():
        with reading(src_group.file.filename, video=video, clip=name):
            data = ds[()]  # a garbled compressed chunk fails here, located
        out = g.create_dataset(name, data=data, chunks=True if ds.chunks else None,
                               compression=compression if compression != "none" else None,
                               compression_opts=compression_opts)
        for k, v in ds.attrs.items():
            out.attrs[k] = v
        _close(out)
    _close(g)


def _close(obj: Any) -> None:
    """Close one HDF5 object now, so that a failed write (disk full) raises here.

    Left to garbage collection, H5Dclose's failure to flush is only printed
    ("Exception ignored") and the half-closed dataset crashes the file's close
    later; closed explicitly, the failure is an OSError with errno and file name.
    Writers run in `sldata.h5.isolated`, which never closes anything after it.
    """
    from .h5 import h5_os_error

    try:
        obj.id._close()
    except RuntimeError as exc:  # h5py reports a failed close as RuntimeError; the text has errno and name
        raise h5_os_error(exc) from None


def write_annotation(root: str | Path, split: str, annotation: dict[str, Any]) -> Path:
    path = annotation_path(Path(root), split)
    write_json(path, annotation)
    return path


def to_v2_annotation(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2 (`clip_order` first, clip entries verbatim); v2 videos pass through."""
    out: dict[str, Any] = {}
    for video, entry in raw.items():
        if isinstance(entry, dict) and "clip_order" in entry:
            out[video] = entry
        else:
            out[video] = {"clip_order": sort_clip_keys(list(entry.keys())), **entry}
    return out


__all__ = [
    "FeatureDataset", "SplitView", "Layout", "RepWriter", "detect_layout", "annotation_path",
    "v1_path", "shard_path", "metadata_path", "clip_order", "clip_entries", "write_annotation",
    "to_v2_annotation", "annotation_version",
]
