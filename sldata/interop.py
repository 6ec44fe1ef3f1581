"""`.pose` interop: pose h5 ⇄ pose-format files (the optional `pose-format` extra).

The exported header is pose-format's own MediaPipe holistic header
(`pose_format.utils.holistic.holistic_components`): components POSE_LANDMARKS,
[FACE_LANDMARKS,] LEFT_HAND_LANDMARKS, RIGHT_HAND_LANDMARKS with their point
names, limbs and colours, point format XYZC, one person. Its POSE_WORLD_LANDMARKS
component is left out: this toolkit never stores world landmarks.

Coordinates. pose-format's MediaPipe files hold pixel coordinates (x * width,
y * height, z as MediaPipe gives it) with the frame size in the header, and its
visualiser and normalisation expect that, so export scales x and y by the
video's width and height. Import divides by the header's dimensions. That costs
at most one float32 rounding step each way (≤ 1 ulp of x and y); z and
confidences come back bit-exact. `normalized=True` writes the normalised
coordinates unchanged and declares a 1x1 canvas: a bit-exact round trip, and
what export does for a video whose width/height are unknown. Import reads a 1x1
header as normalised coordinates and leaves width/height unset.

fps. The .pose body stores fps as a 32-bit float; import takes the shortest
decimal that rounds to it, so 25, 29.97 or 59.94 come back exactly, while
30000/1001 comes back as 29.97003.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .findings import Finding, finding
from .progress import NullProgress, Progress

#: pose-format component name -> our part name
COMPONENTS = {
    "POSE_LANDMARKS": "pose",
    "FACE_LANDMARKS": "face",
    "LEFT_HAND_LANDMARKS": "left_hand",
    "RIGHT_HAND_LANDMARKS": "right_hand",
}
_PARTS = {v: k for k, v in COMPONENTS.items()}
MAX_DIM = 65535  # the header stores width/height as unsigned 16-bit integers


def _pose_format() -> Any:
    try:
        import pose_format  # noqa: F401
        from pose_format import Pose
        from pose_format.numpy.pose_body import NumPyPoseBody
        from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
        from pose_format.utils.holistic import holistic_components
    except ImportError as exc:
        raise UserError("`.pose` interop needs pose-format: pip install 'sldata[pose-format]' "
                        f"(import failed: {exc})") from None
    return Pose, NumPyPoseBody, PoseHeader, PoseHeaderDimensions, holistic_components


@dataclass
class ExportResult:
    out_dir: Path
    keypoint_set: str
    written: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "keypoint_set": self.keypoint_set,
                "written": [str(p) for p in self.written]}


@dataclass
class ImportResult:
    out: Path | None
    keypoint_set: str
    count: int = 0
    failures: list[Finding] = field(default_factory=list)  # file = the .pose file's name

    @property
    def failed(self) -> dict[str, str]:
        """The documented shape (--json `failed`): file name -> reason."""
        return {f.file or "": f.message for f in self.failures}

    def to_dict(self) -> dict[str, Any]:
        return {"out": None if self.out is None else str(self.out), "keypoint_set": self.keypoint_set,
                "count": self.count, "failed": self.failed}


def pose_header(keypoint_set: str, width: int, height: int) -> Any:
    """pose-format's holistic header restricted to the components of `keypoint_set`."""
    from .pose import keypoint_set as get_set

    _, _, PoseHeader, PoseHeaderDimensions, holistic_components = _pose_format()
    kset = get_set(keypoint_set)
    wanted = [_PARTS[p] for p in kset.parts]  # our part order is pose-format's order
    comps = {c.name: c for c in holistic_components("XYZC")}
    return PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=width, height=height, depth=0),
                      components=[comps[name] for name in wanted])


def sample_to_pose(sample: Any, keypoint_set: str, normalized: bool = False) -> Any:
    """One PoseSample as a pose-format Pose (pixel coordinates unless normalised/unknown size)."""
    Pose, NumPyPoseBody, *_ = _pose_format()
    w, h = sample.width, sample.height
    pixel = not normalized and bool(w) and bool(h)
    if pixel and (w > MAX_DIM or h > MAX_DIM):
        raise UserError(f"frame size {w}x{h} exceeds the .pose header's limit of {MAX_DIM}")
    header = pose_header(keypoint_set, int(w) if pixel else 1, int(h) if pixel else 1)
    data = np.asarray(sample.keypoints, dtype=np.float32).copy()
    if pixel:
        data[..., 0] = (data[..., 0].astype(np.float64) * w).astype(np.float32)
        data[..., 1] = (data[..., 1].astype(np.float64) * h).astype(np.float32)
    conf = np.asarray(sample.confidences, dtype=np.float32)
    fps = float(sample.fps) if sample.fps else 0.0
    body = NumPyPoseBody(fps=fps, data=data[:, None], confidence=conf[:, None])
    return Pose(header, body)


def export_pose(pose_h5: str | Path, out_dir: str | Path, *, normalized: bool = False,
                keys: list[str] | None = None, progress: Progress | None = None) -> ExportResult:
    """Write `out_dir/KEY.pose` for every video (each file atomically; reruns overwrite).

    Every target is checked before the first is written (a key that is not UTF-8
    text, a name too long for the file system, a directory in the way), so such a
    run writes nothing. A video that cannot be read stops the run (exit 2) with
    file and key named; the files written before it are complete.
    """
    from .io import atomic_path, check_name, check_output, output_lock, reading, text_name
    from .pose import PoseH5

    _pose_format()
    progress = progress or NullProgress()
    pose_h5, out_dir = Path(pose_h5), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {text_name(out_dir)}: exists and is not a directory")
    if pose_h5.is_file():
        with open(pose_h5, "rb"):  # an unreadable file is "permission denied", not "cannot open as HDF5"
            pass
    with PoseH5(pose_h5) as src:
        with reading(pose_h5):
            kset = src.keypoint_set
            all_keys = src.keys()
        if kset is None:
            raise UserError(f"{text_name(pose_h5)}: unknown keypoint set; cannot name .pose components")
        for k in all_keys:
            if isinstance(k, bytes):  # h5py gives a name that is not UTF-8 as bytes; no str can address it
                raise UserError(f"{text_name(pose_h5)}: the video key '{text_name(os.fsdecode(k))}' is not "
                                "UTF-8 text, which sldata cannot address; rename it (sldata's own writers "
                                "escape such names as \\xNN)")
        chosen = keys if keys is not None else all_keys
        for k in chosen:
            if k not in all_keys:
                raise UserError(f"{text_name(pose_h5)}: no video '{text_name(k)}'")
        targets = {key: out_dir / f"{key}.pose" for key in chosen}
        for target in targets.values():  # before anything is written
            check_name(target)
            check_output(target, inputs=[pose_h5], kind="file")
        result = ExportResult(out_dir, kset.name)
        with output_lock(out_dir, ".pose directory"):
            progress.start("export .pose", total=len(chosen), unit="videos")
            try:
                for key, target in targets.items():
                    where = f"{text_name(pose_h5)}:{text_name(key)}"
                    with reading(pose_h5, video=key):  # a garbled chunk: one line naming file and key
                        if src.shape(key) is None or src.shape(key, "visibility") is None:
                            raise UserError(f"{where}: keypoints and visibility must both be present")
                        sample = src.read(key)
                    sample.check(where)  # a malformed video is a clear error, not a pose-format ValueError
                    if sample.keypoints.shape[1] != kset.num_keypoints:
                        raise UserError(f"{where}: {sample.keypoints.shape[1]} keypoints, "
                                        f"{kset.name} has {kset.num_keypoints}")
                    pose = sample_to_pose(sample, kset.name, normalized=normalized)
                    with atomic_path(target, kind="file", inputs=[pose_h5]) as tmp:
                        with open(tmp, "wb") as fh:
                            pose.write(fh)
                    result.written.append(target)
                    progress.advance(1)
            finally:
                progress.finish()
    return result


def _fps_from_float32(fps: float) -> float | None:
    if not fps or not np.isfinite(fps) or fps <= 0:
        return None
    return float(repr(np.float32(fps)).removeprefix("np.float32(").removesuffix(")"))


def pose_to_sample(pose: Any, keypoint_set: str, where: str) -> Any:
    """A pose-format Pose (MediaPipe holistic components) as a PoseSample in normalised coordinates."""
    from .pose import PoseSample, keypoint_set as get_set

    kset = get_set(keypoint_set)
    comps = {c.name: c for c in pose.header.components}
    offsets: dict[str, int] = {}
    at = 0
    for c in pose.header.components:
        offsets[c.name] = at
        at += len(c.points)
    for part in kset.parts:
        name = _PARTS[part]
        if name not in comps:
            raise UserError(f"{where}: no {name} component (has: {', '.join(comps)}); "
                            "import-pose reads MediaPipe holistic .pose files")
    raw = np.asarray(pose.body.data.data if hasattr(pose.body.data, "data") else pose.body.data)
    conf = np.asarray(pose.body.confidence)
    if raw.ndim != 4 or raw.shape[-1] < 2:
        raise UserError(f"{where}: expected (frames, people, points, dims) data, got {raw.shape}")
    frames = raw.shape[0]
    if raw.shape[1] == 0:  # no person in any frame: everything missing
        raw = np.zeros((frames, 1) + raw.shape[2:], np.float32)
        conf = np.zeros((frames, 1, raw.shape[2]), np.float32)
    dims = min(3, raw.shape[-1])  # a 2-D (XYC) file gets z = 0
    kp = np.zeros((frames, kset.num_keypoints, 3), np.float32)
    cf = np.zeros((frames, kset.num_keypoints), np.float32)
    for part, (lo, hi) in kset.parts.items():
        name = _PARTS[part]
        need = hi - lo
        if len(comps[name].points) < need:
            raise UserError(f"{where}: {name} has {len(comps[name].points)} points, {keypoint_set} needs {need}")
        off = offsets[name]
        kp[:, lo:hi, :dims] = raw[:, 0, off:off + need, :dims]
        cf[:, lo:hi] = conf[:, 0, off:off + need]
    w, h = int(pose.header.dimensions.width), int(pose.header.dimensions.height)
    pixel = not (w == 1 and h == 1)
    if pixel:
        if w <= 0 or h <= 0:
            raise UserError(f"{where}: header has no frame size ({w}x{h}) to normalise pixel coordinates")
        kp[..., 0] = (kp[..., 0].astype(np.float64) / w).astype(np.float32)
        kp[..., 1] = (kp[..., 1].astype(np.float64) / h).astype(np.float32)
    return PoseSample(kp, cf, fps=_fps_from_float32(float(pose.body.fps)),
                      width=w if pixel else None, height=h if pixel else None)


def _read_header(path: Path) -> Any:
    """Only the header of a .pose file (the body is not read)."""
    from pose_format import Pose

    try:
        from pose_format.pose_body import EmptyPoseBody

        with open(path, "rb") as fh:
            return Pose.read(fh, pose_body=EmptyPoseBody).header
    except (ImportError, TypeError, AttributeError):  # older pose-format: read the whole file
        return Pose.read(path.read_bytes()).header


def _has_full_face(header: Any) -> bool:
    face = next((c for c in header.components if c.name == "FACE_LANDMARKS"), None)
    return face is not None and len(face.points) >= 468


def import_pose(src: str | Path, out: str | Path, *, keypoints: str = "auto", dtype: str = "float32",
                progress: Progress | None = None) -> ImportResult:
    """Pack `.pose` files (a directory, or one file) into a pose h5, one video in memory at a time.

    `keypoints="auto"` picks holistic543 when every readable file has the 468-point
    face, else openhands75. Files that cannot be read or converted are reported in
    `failed` (the CLI exits 1); the others are written.
    """
    from .errors import describe_os_error
    from .io import check_name, output_lock, text_name
    from .pose import KEYPOINT_SETS, PoseH5Writer, check_pose_output

    Pose, *_ = _pose_format()
    progress = progress or NullProgress()
    src, out = Path(src), Path(out)
    if src.is_dir():
        with os.scandir(src) as it:  # an unreadable directory is "permission denied", not "no .pose files"
            files = sorted(Path(e.path) for e in it if e.name.endswith(".pose") and e.is_file())
    elif src.is_file() and src.suffix == ".pose":
        files = [src]
    else:
        raise UserError(f"{text_name(src)}: no such directory or .pose file")
    if not files:
        raise UserError(f"{text_name(src)}: no .pose files")
    if keypoints != "auto" and keypoints not in KEYPOINT_SETS:
        raise UserError(f"--keypoints {keypoints!r}: choose auto, {', '.join(KEYPOINT_SETS)}")
    # The output rule before any work: never an input (links included), never a directory.
    check_pose_output(out, [src, *files], "import-pose")
    check_name(out)
    if keypoints == "auto":
        faces = []
        for p in files:
            try:
                faces.append(_has_full_face(_read_header(p)))
            except Exception:  # reported with its reason by the full read below
                pass
        keypoints = "holistic543" if faces and all(faces) else "openhands75"
    result = ImportResult(out, keypoints)
    failures = result.failures
    with output_lock(out, "pose h5"):
        progress.start("import .pose", total=len(files), unit="files")
        try:
            with PoseH5Writer(out, keypoint_set=keypoints, dtype=dtype,
                              root_attrs={"imported_from": "pose-format", "sldata_command": "import-pose"}) as writer:
                for p in files:
                    name = text_name(p.name)
                    try:
                        pose = Pose.read(p.read_bytes())
                    except OSError as exc:  # permission denied, I/O error: that file's failure
                        failures.append(finding("pose-unreadable",
                                                describe_os_error(exc).removeprefix(f"{text_name(p)}: "), name))
                    except Exception as exc:  # pose-format raises many kinds on corrupt input
                        failures.append(finding("pose-unreadable", f"not a readable .pose file "
                                                f"({type(exc).__name__}: {exc})", name))
                    else:
                        key = text_name(p.stem)
                        try:
                            writer.add(key, pose_to_sample(pose, keypoints, name), source=_source(p.name))
                            result.count += 1
                        except UserError as exc:
                            failures.append(finding("duplicate-video" if key in writer else "pose-unreadable",
                                                    str(exc).removeprefix(f"{name}: "), name, video=key))
                    progress.advance(1)
                if result.count == 0:
                    raise UserError(f"{text_name(src)}: none of {len(files)} .pose files could be imported: "
                                    + "; ".join(f"{f.file}: {f.message}" for f in failures[:3]))
        finally:
            progress.finish()
    return result


def _source(name: str) -> str | bytes:
    """The `source` attribute: the file name, as its exact bytes when it is not UTF-8.

    The key is then `io.text_name` of the stem (`caf\\xe9` for `caf\xe9.pose`), valid
    UTF-8 that every tool can address; the attribute keeps what the file was called.
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name)
