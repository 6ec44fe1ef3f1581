"""`validate(path)`: detect the layout at `path` and check everything in SPEC §5.

Returns a Report of Findings; bad data never raises. A UserError means the
input cannot be used at all (no such path, an empty directory, a bad option).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UserError
from ..features import detect_layout
from ..findings import Report, finding
from ..io import TMP_MARK
from ..pkls import has_pkls, is_pkl_name
from ..progress import Progress

#: Layout names a Report may carry.
LAYOUTS = ("v1", "v2", "pose-h5", "pkl-dir", "unknown")


def detect(path: str | Path) -> tuple[str, str]:
    """(layout, why) for an existing path; layout is "unknown" when nothing fits."""
    path = Path(path)
    if path.is_dir():
        if detect_layout(path) is not None:
            return detect_layout(path).kind, ""
        if has_pkls(path):
            return "pkl-dir", ""
        return "unknown", ("no annotation.SPLIT.json, no REP.SPLIT.h5 / REP/REP.SPLIT.K.h5 feature files "
                           "and no *.pkl pose files")
    if is_pkl_name(path.name):
        return "pkl-dir", ""
    import h5py

    try:
        if not h5py.is_hdf5(str(path)):
            return "unknown", "not an HDF5 file, a pkl or a dataset directory"
        with h5py.File(path, "r") as f:
            if "keypoints" in f:
                return "pose-h5", ""
            return "unknown", "an HDF5 file without a 'keypoints' group (a feature file? validate its directory)"
    except OSError as exc:
        return "unknown", f"an HDF5 file that cannot be opened ({exc})"


def validate(path: str | Path, deep: bool = False, split: str | None = None,
             labels: Sequence[str | Path] | None = None, progress: Progress | None = None,
             workers: int | None = None, videos: str | Path | None = None) -> Report:
    """Check the dataset at `path` (v1, v2, pose h5 or pkl dir); never stops at the first problem.

    deep: also read every array once (NaN/Inf, pose coordinate range).
    split: only that split (feature datasets; labels.SPLIT.csv files for pose).
    labels: labels.SPLIT.csv files to check against a pose h5.
    workers: processes for big inputs (default: the usable cores; 1 = none).
    videos: a folder of videos that must each have its pose in `path` (pkl dir or pose h5).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if videos is not None:
        from .videos import check_videos

        if path.is_dir() and detect(path)[0] != "pkl-dir":  # a pose folder of failures only: nothing extracted
            report = Report("pkl-dir")
        else:
            report = validate(path, deep=deep, split=split, labels=labels, progress=progress, workers=workers)
        report.extend(check_videos(path, videos))
        return report
    if path.is_dir() and not any(p for p in path.iterdir() if TMP_MARK not in p.name):
        raise UserError(f"{path}: empty directory, nothing to validate")
    layout, why = detect(path)
    if labels and layout != "pose-h5":
        raise UserError(f"--labels checks labels against a pose h5, but {path} is {_a(layout)}")
    if layout == "unknown":
        report = Report("unknown")
        report.add(finding("unknown-layout", f"nothing recognisable: {why}", path))
        return report
    if layout in ("v1", "v2"):
        from .features import validate_features

        return validate_features(detect_layout(path), deep=deep, split=split, workers=workers, progress=progress)
    if layout == "pkl-dir":
        from .pose import validate_pkl_dir

        return validate_pkl_dir(path, deep=deep, workers=workers, progress=progress)
    from .pose import validate_pose_h5

    return validate_pose_h5(path, deep=deep, workers=workers, progress=progress, labels=labels, split=split)

def _a(layout: str) -> str:
    return {"v1": "a v1 feature dataset", "v2": "a v2 feature dataset", "pkl-dir": "a pkl directory",
            "unknown": "not a recognisable dataset"}.get(layout, layout)


__all__ = ["validate", "detect", "LAYOUTS"]
