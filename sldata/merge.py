"""merge-pose: combine pose h5 files (e.g. one per job-array task) into one, bit-exactly.

Every video is copied with HDF5 object copy (`H5Ocopy`): chunks are copied as
stored, so arrays, dtypes, chunking, compression and per-video attributes are
those of the input, byte for byte. Because object copy does not decompress, each
video is first read once (one at a time, constant memory) so that a garbled
compressed chunk stops the merge with the file and key named instead of being
copied into the result.

Everything that can be checked before writing is checked first: a key in two
inputs, differing keypoint sets, an output that is an input or a directory: exit 2
and nothing written. The output appears atomically when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .io import output_lock, reading, remove_stale_temporaries, text_name
from .pose import KEYPOINT_SETS, PoseH5Writer, check_pose_output, h5_error_reason, keypoint_set_for
from .progress import NullProgress, Progress

#: Root attributes the merge writes itself rather than copies.
OWN_ATTRS = ("format", "keypoint_set", "sldata_version", "merged_from")


@dataclass
class MergeReport:
    output: str
    inputs: list[dict[str, Any]] = field(default_factory=list)  # {"file", "videos"}
    keypoint_set: str | None = None
    videos: int = 0
    frames: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_pose(inputs: Sequence[str | Path], output: str | Path, *,
               progress: Progress | None = None) -> MergeReport:
    """Combine the pose h5 files `inputs` into `output` (SPEC §4, merge-pose)."""
    paths = [Path(p) for p in inputs]
    output = Path(output)
    if not paths:
        raise UserError("merge-pose needs at least one input h5")
    _check_inputs(paths)
    check_pose_output(output, paths, "merge-pose")
    progress = progress or NullProgress()
    report = MergeReport(text_name(str(output)))
    with output_lock(output, "pose h5"):
        remove_stale_temporaries(output)
        infos = [_summary(p) for p in paths]  # one file open at a time: a job array may have 1000s
        kset = _common_set(infos)
        keys = _keys(infos)
        attrs, report.warnings = _root_attrs(infos)
        report.keypoint_set = kset
        report.inputs = [{"file": text_name(str(i.path)), "videos": len(i.keys)} for i in infos]
        attrs["sldata_command"] = "merge-pose"  # whose output this is (check_pose_output)
        attrs["merged_from"] = json.dumps([{"file": text_name(i.path.name), "videos": len(i.keys)} for i in infos])
        total = sum(len(k) for k in keys)
        progress.start(f"merge-pose → {output.name}", total=total, unit="videos")
        try:
            with PoseH5Writer(output, keypoint_set=kset, root_attrs=attrs, inputs=tuple(paths)) as w:
                for info in infos:
                    with _open(info.path) as f:
                        for i, key in enumerate(info.keys):
                            report.frames += _verify(info.path, f, key)
                            w.copy_from(f, key, flush=(i % 256 == 255))
                            progress.advance(1)
        finally:
            progress.finish()
    report.videos = total
    return report


@dataclass
class _Input:
    """What the checks need of one input, read with the file open only briefly."""

    path: Path
    kset: str | None
    keys: list[str]
    attrs: dict[str, Any]


def _summary(path: Path) -> _Input:
    with _open(path) as f:
        return _Input(path, _file_set(f), sorted(f["keypoints"].keys()), dict(f.attrs.items()))


def _check_inputs(paths: list[Path]) -> None:
    seen: dict[tuple[int, int], Path] = {}
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise UserError(f"{text_name(str(p))}: no such file") from None
        if p.is_dir():
            raise UserError(f"{text_name(str(p))}: is a directory, expected a pose h5")
        ident = (st.st_dev, st.st_ino)
        if ident in seen:
            raise UserError(f"{text_name(str(p))}: given twice (also as {text_name(str(seen[ident]))})")
        seen[ident] = p


def _open(path: Path) -> Any:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{text_name(str(path))}: cannot open as HDF5 ({h5_error_reason(exc)})") from None
    if not isinstance(f.get("keypoints"), h5py.Group):
        f.close()
        raise UserError(f"{text_name(str(path))}: not a pose h5 (no 'keypoints' group)")
    return f


def _file_set(f: Any) -> str | None:
    name = f.attrs.get("keypoint_set")
    name = name.decode() if isinstance(name, bytes) else name
    if name in KEYPOINT_SETS:
        return name
    for key in f["keypoints"]:
        ks = keypoint_set_for(f["keypoints"][key].shape[1]) if f["keypoints"][key].ndim == 3 else None
        return ks.name if ks else None
    return None


def _common_set(infos: list[_Input]) -> str:
    sets = [(i.path, i.kset) for i in infos if i.keys]
    names = {s for _, s in sets}
    if None in names:
        bad = next(p for p, s in sets if s is None)
        raise UserError(f"{text_name(str(bad))}: its keypoints match no keypoint set (openhands75, holistic543)")
    if len(names) > 1:
        shown = ", ".join(f"{text_name(p.name)}: {s}" for p, s in sets)
        raise UserError(f"the inputs hold different keypoint sets ({shown}); merge files of one set")
    if not names:
        return infos[0].kset or "openhands75"
    return names.pop()


def _keys(infos: list[_Input]) -> list[list[str]]:
    owner: dict[str, Path] = {}
    clashes: list[str] = []
    for info in infos:
        for k in info.keys:
            if k in owner:
                clashes.append(f"  {k}: {text_name(owner[k].name)}, {text_name(info.path.name)}")
            else:
                owner[k] = info.path
    if clashes:
        raise UserError(f"{len(clashes)} key(s) occur in more than one input; nothing written:\n"
                        + "\n".join(clashes[:20]) + (f"\n  ... {len(clashes) - 20} more" if len(clashes) > 20 else ""))
    return [i.keys for i in infos]


def _verify(path: Path, f: Any, key: str) -> int:
    """Read both arrays of a video once (object copy would copy a garbled chunk unnoticed)."""
    with reading(path, video=key):
        kp = f["keypoints"][key]
        kp[()]
        if "visibility" in f and key in f["visibility"]:
            f["visibility"][key][()]
        return int(kp.shape[0]) if kp.ndim else 0


def _root_attrs(infos: list[_Input]) -> tuple[dict[str, Any], list[str]]:
    """The inputs' root attributes combined: MediaPipe versions joined, the rest kept when all agree."""
    values: dict[str, list[Any]] = {}
    for info in infos:
        for k, v in info.attrs.items():
            if k not in OWN_ATTRS:
                values.setdefault(k, []).append(v)
    attrs: dict[str, Any] = {}
    warnings: list[str] = []
    for k, vs in sorted(values.items()):
        if k == "mediapipe_version":
            parts = {s.strip() for v in vs for s in _text(v).split(",") if s.strip()}
            attrs[k] = ", ".join(sorted(parts))
            if len(parts) > 1:
                warnings.append(f"inputs come from several MediaPipe versions: {attrs[k]}")
        elif len(vs) == len(infos) and all(_same(vs[0], v) for v in vs[1:]):
            attrs[k] = vs[0]
        else:
            warnings.append(f"root attribute {k!r} differs between inputs (or is missing from some); not kept")
    return attrs, warnings


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype \
            and np.array_equal(a, b)
    return type(a) is type(b) and a == b
