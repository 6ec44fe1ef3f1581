"""`sldata render`: draw pose skeletons as PNG (one frame or a contact sheet), GIF or MP4.

Edges are MediaPipe's own connection sets (pose, hands, face-mesh contours).
Coordinates are MediaPipe's normalised image coordinates, so a frame maps onto
any canvas by scaling x by its width and y by its height. A point is drawn only
when its confidence is > 0 (missing parts are zeros with confidence 0), an edge
only when both of its ends are drawn.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import UserError
from .io import atomic_path, check_output, output_lock, reading, text_name, write_bytes_atomic
from .pose import KEYPOINT_SETS, KeypointSet, PoseSample, keypoint_set_for
from .progress import NullProgress, Progress

DEFAULT_SIZE = (512, 512)
DEFAULT_FPS = 25.0
#: fps accepted from --fps or a file's attribute (a file's fps outside it falls back to DEFAULT_FPS).
MIN_FPS, MAX_FPS = 0.1, 240.0
#: Tiles of a PNG contact sheet: a sheet of more than this is unreadable anyway (and huge).
MAX_SHEET = 100
MAX_SHEET_WIDTH = 1280

#: BGR colours per part (OpenCV order): body light grey, left hand orange, right hand
#: blue, face green. Left/right are the signer's, as MediaPipe labels them.
COLORS: dict[str, tuple[int, int, int]] = {
    "pose": (230, 230, 230),
    "left_hand": (0, 140, 255),
    "right_hand": (255, 120, 0),
    "face": (90, 200, 90),
}


@dataclass
class RenderResult:
    out: Path
    key: str
    frames: int
    frame_indices: list[int]
    width: int
    height: int
    kind: str  # png | gif | mp4

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def connections(kset: KeypointSet, face: bool = True) -> dict[str, list[tuple[int, int]]]:
    """Edges per part as absolute keypoint indices of `kset`, from MediaPipe's sets."""
    from mediapipe.python.solutions import face_mesh_connections, hands_connections, pose_connections

    local = {
        "pose": sorted(pose_connections.POSE_CONNECTIONS),
        "left_hand": sorted(hands_connections.HAND_CONNECTIONS),
        "right_hand": sorted(hands_connections.HAND_CONNECTIONS),
        "face": sorted(face_mesh_connections.FACEMESH_CONTOURS),
    }
    out: dict[str, list[tuple[int, int]]] = {}
    for part, (lo, hi) in kset.parts.items():
        if part == "face" and not face:
            continue
        out[part] = [(lo + int(a), lo + int(b)) for a, b in local[part] if lo + max(a, b) < hi]
    return out


#: Frames read from a pose h5 at a time while rendering (one chunk of the default layout).
BLOCK_FRAMES = 128


class PoseFrames:
    """One video's frames for drawing, read from a pose h5 in blocks (never the whole video)
    or held whole when it came from a pkl."""

    def __init__(self, key: str, num_frames: int, num_keypoints: int, fps: float | None,
                 width: int | None, height: int | None, h5: Any = None, sample: PoseSample | None = None,
                 files: tuple[Path, ...] = ()):
        self.key, self.num_frames, self.num_keypoints = key, num_frames, num_keypoints
        self.fps, self.width, self.height = fps, width, height
        self._h5, self._sample = h5, sample
        self.files = files  # what was read: never an output
        self._block: tuple[int, np.ndarray, np.ndarray] | None = None

    def frame(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (N, 3), confidences (N,)) of frame i."""
        if self._sample is not None:
            return self._sample.keypoints[i], self._sample.confidences[i]
        if self._block is None or not (self._block[0] <= i < self._block[0] + len(self._block[1])):
            start = i - i % BLOCK_FRAMES
            stop = min(self.num_frames, start + BLOCK_FRAMES)
            with reading(self._h5.path, video=self.key):  # a garbled chunk: one line, file and key
                self._block = (start, self._h5.keypoints(self.key, start, stop),
                               self._h5.visibility(self.key, start, stop))
        start, kp, conf = self._block
        return kp[i - start], conf[i - start]

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()


def _readable(path: Path) -> None:
    """Open an input once so that a refused read is PermissionError naming it (exit 2),
    not a library's vaguer "cannot open"."""
    with open(path, "rb"):
        pass


def load_pose(path: str | Path, key: str | None) -> PoseFrames:
    """The video to draw: a key of a pose h5, a single pkl, or KEY.pkl in a pkl directory."""
    from .pkls import find_pkls, is_pkl_name, pkl_key
    from .pose import PoseH5, load_pkl

    path = Path(path)
    if path.is_dir() or is_pkl_name(path.name):
        if path.is_dir():
            found = find_pkls(path)  # an unreadable directory is PermissionError, not "no pkls"
            pkls = {pkl_key(p): p for p in found.files}
            if not pkls:
                raise UserError(f"{text_name(path)}: no .pkl files to render")
            if key is None or key not in pkls:
                raise UserError(_unknown_key(key, path, sorted(pkls)))
            file = pkls[key]
        else:
            if not path.is_file():
                raise UserError(f"{text_name(path)}: no such file")
            if key not in (None, pkl_key(path)):
                raise UserError(f"{text_name(path)} holds one video, '{pkl_key(path)}'; "
                                f"leave VIDEO_KEY out or pass '{pkl_key(path)}'")
            key, file = pkl_key(path), path
        s = load_pkl(file)
        return PoseFrames(key, s.num_frames, s.keypoints.shape[1], s.fps, s.width, s.height, sample=s,
                          files=(path, file))
    if not path.is_file():
        raise UserError(f"{text_name(path)}: no such file")
    _readable(path)
    h5 = PoseH5(path)
    try:
        with reading(path, video=key):
            keys = h5.keys()
            if key is None and len(keys) == 1:
                key = os.fsdecode(keys[0]) if isinstance(keys[0], bytes) else keys[0]
            _check_key(path, key, keys)
            assert key is not None
            shape = h5.shape(key)
            vis = h5.shape(key, "visibility")
            if shape is None or len(shape) != 3 or shape[2] != 3:
                raise UserError(f"{text_name(path)}:{text_name(key)}: keypoints must be (F, N, 3), got {shape}")
            if vis is None or tuple(vis[:2]) != tuple(shape[:2]) or len(vis) not in (2, 3):
                raise UserError(f"{text_name(path)}:{text_name(key)}: visibility must be (F, N) = "
                                f"{tuple(shape[:2])}, got {vis}")
            a = h5.video_attrs(key)
        return PoseFrames(key, shape[0], shape[1], a.get("fps"), a.get("width"), a.get("height"),
                          h5=h5, files=(path,))
    except BaseException:
        h5.close()
        raise


def _check_key(path: Path, key: str | None, keys: list[Any]) -> None:
    """`key` names a video of `keys` (which h5py gives as bytes for a name that is not UTF-8)."""
    if key is not None and key in keys:
        return
    if key is not None and any(isinstance(k, bytes) and os.fsdecode(k) == key for k in keys):
        raise UserError(f"{text_name(path)}: the video key '{text_name(key)}' is not UTF-8 text, which "
                        "sldata cannot address; rename it (sldata's own writers escape such names as \\xNN)")
    raise UserError(_unknown_key(key, path, keys))


def _unknown_key(key: str | None, path: Path, keys: list[Any]) -> str:
    names = [text_name(os.fsdecode(k) if isinstance(k, bytes) else k) for k in keys]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    what = "give a VIDEO_KEY" if key is None else f"no video '{text_name(key)}'"
    return f"{text_name(path)}: {what}; available: {shown or 'none'}"


def parse_frames(spec: str | None, num_frames: int) -> range:
    """`A:B` (end exclusive, Python-style, negatives from the end), `A:`, `:B` or one frame `A`."""
    if num_frames == 0:
        raise UserError("the video has no frames to render")
    if spec is None or spec.strip() in ("", ":"):
        return range(num_frames)
    try:
        if ":" in spec:
            a, b = spec.split(":", 1)
            start = int(a) if a.strip() else 0
            stop = int(b) if b.strip() else num_frames
        else:
            start = int(spec)
            stop = start + 1 if start != -1 else num_frames
    except ValueError:
        raise UserError(f"--frames must look like A:B, A: or A (integers, end exclusive, negatives count "
                        f"from the end), not {spec!r}; the video has frames 0 to {num_frames - 1}") from None
    r = range(num_frames)[slice(start, stop)]
    if len(r) == 0:
        raise UserError(f"--frames {spec}: no frames in range; the video has {num_frames} "
                        f"(frames 0 to {num_frames - 1})")
    return r


def draw_frame(canvas: np.ndarray, keypoints: np.ndarray, confidences: np.ndarray,
               edges: dict[str, list[tuple[int, int]]], kset: KeypointSet,
               min_conf: float = 0.0) -> np.ndarray:
    """Draw one frame's skeleton onto a BGR uint8 canvas in place (and return it).

    Points with confidence <= `min_conf` are not drawn; the face gets its contour
    edges only (468 dots would hide the face).
    """
    import cv2

    h, w = canvas.shape[:2]
    scale = max(1, round(min(w, h) / 256))
    xy = np.nan_to_num(keypoints[:, :2].astype(np.float64), nan=-1.0, posinf=-1.0, neginf=-1.0)
    px = np.stack([xy[:, 0] * w, xy[:, 1] * h], axis=1)
    px = np.clip(np.rint(px), -10 * max(w, h), 10 * max(w, h)).astype(np.int32)
    shown = (confidences > min_conf) & np.isfinite(keypoints[:, :2]).all(axis=1)
    for part, pairs in edges.items():
        color = COLORS.get(part, (255, 255, 255))
        thick = 1 if part == "face" else (2 if part == "pose" else 1) * scale
        for a, b in pairs:
            if shown[a] and shown[b]:
                cv2.line(canvas, tuple(int(v) for v in px[a]), tuple(int(v) for v in px[b]), color, thick,
                         cv2.LINE_AA)
    for part, (lo, hi) in kset.parts.items():
        if part not in edges or part == "face":
            continue
        color = COLORS.get(part, (255, 255, 255))
        radius = 1 if part == "face" else 2 * scale
        for i in range(lo, hi):
            if shown[i]:
                cv2.circle(canvas, (int(px[i, 0]), int(px[i, 1])), radius, color, -1, cv2.LINE_AA)
    return canvas


def _video_frames(video: Path, frames: range, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """Frames `frames` of a video, resized to `size`; black after the video runs out."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        pos = -1
        for i in frames:
            if i != pos + 1:
                cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, img = cap.read()
            pos = i
            if not ok or img is None:
                img = np.zeros((size[1], size[0], 3), np.uint8)
            elif (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            yield img
    finally:
        cap.release()


def _video_size(video: Path) -> tuple[int, int]:
    import cv2

    if not video.is_file():
        raise UserError(f"--video {text_name(video)}: no such file")
    _readable(video)
    cap = cv2.VideoCapture(str(video))
    try:
        ok = cap.isOpened()
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if not ok or w <= 0 or h <= 0:
        raise UserError(f"--video {text_name(video)}: cannot be opened as a video")
    return w, h


def check_options(out: Path, sheet: int, fps: float | None, min_conf: float) -> str:
    """The output kind; UserError (exit 2, with the allowed range) for an option out of range."""
    kind = out.suffix.lower().lstrip(".")
    if kind not in ("png", "gif", "mp4"):
        raise UserError(f"-o {text_name(out)}: the output must end in .png, .gif or .mp4")
    if not 1 <= sheet <= MAX_SHEET:
        raise UserError(f"--sheet {sheet}: must be between 1 and {MAX_SHEET}")
    if fps is not None and not (MIN_FPS <= fps <= MAX_FPS):  # NaN fails too
        raise UserError(f"--fps {fps}: must be between {MIN_FPS} and {MAX_FPS:g}")
    if not 0.0 <= min_conf <= 1.0:
        raise UserError(f"--min-conf {min_conf}: must be between 0 and 1")
    return kind


def render(pose: str | Path, key: str | None, out: str | Path, *, video: str | Path | None = None,
           frames: str | None = None, size: tuple[int, int] | None = None, sheet: int = 12,
           face: bool = True, min_conf: float = 0.0, fps: float | None = None,
           progress: Progress | None = None) -> RenderResult:
    """Render `key` of a pose file to `out` (.png, .gif or .mp4), written atomically.

    The output rule comes first, before anything is read: `out` is never the pose
    file, a pkl or the `--video` (hard and symbolic links included), never an
    existing directory. `fps` (default: the file's, else 25) sets GIF/MP4 speed.
    """
    from .errors import require_extra

    out = Path(out)
    kind = check_options(out, sheet, fps, min_conf)
    require_extra("look", "cv2", "PIL")  # before any work: exit 2 with the install line
    require_extra("extract", "mediapipe")  # the edges are MediaPipe's own connection sets
    video = Path(video) if video is not None else None
    named = [Path(pose)] + ([video] if video is not None else [])
    check_output(out, inputs=named, kind="file")
    vsize = _video_size(video) if video is not None else None
    src = load_pose(pose, key)
    try:
        inputs = list(src.files) + ([video] if video is not None else [])
        check_output(out, inputs=inputs, kind="file")  # the pkl of a pkl directory
        with output_lock(out, "render"):
            return _render(src, out, kind, video, vsize, frames, size, sheet, face, min_conf, pose,
                           fps, inputs, progress or NullProgress())
    finally:
        src.close()


def _render(src: PoseFrames, out: Path, kind: str, video: Path | None, vsize: tuple[int, int] | None,
            frames: str | None, size: tuple[int, int] | None, sheet: int, face: bool, min_conf: float,
            pose: Any, fps: float | None, inputs: list[Path], progress: Progress) -> RenderResult:
    n = src.num_keypoints
    kset = keypoint_set_for(n)
    if kset is None:
        raise UserError(f"{text_name(pose)}: {n} keypoints per frame is neither "
                        f"{' nor '.join(f'{k.name} ({k.num_keypoints})' for k in KEYPOINT_SETS.values())}")
    w, h = size or vsize or ((int(src.width), int(src.height)) if src.width and src.height else DEFAULT_SIZE)
    idx = parse_frames(frames, src.num_frames)
    edges = connections(kset, face=face)
    if fps is None:
        fps = float(src.fps) if src.fps and MIN_FPS <= src.fps <= MAX_FPS else DEFAULT_FPS

    if kind == "png" and len(idx) > sheet:  # contact sheet: evenly spaced frames of the range
        pick = np.unique(np.linspace(0, len(idx) - 1, sheet).round().astype(int))
        idx_list = [idx[i] for i in pick]
    else:
        idx_list = list(idx)

    def frames_iter() -> Iterator[np.ndarray]:
        backgrounds = (_video_frames(video, idx_list, (w, h)) if video is not None
                       else (np.zeros((h, w, 3), np.uint8) for _ in idx_list))
        for i, bg in zip(idx_list, backgrounds):
            kp, conf = src.frame(i)
            yield draw_frame(bg, kp, conf, edges, kset, min_conf)
            progress.advance(1)

    progress.start(f"render {text_name(src.key)}", total=len(idx_list), unit="frames")
    try:
        if kind == "png":
            _write_png(out, list(frames_iter()), idx_list, inputs)
        elif kind == "gif":
            _write_gif(out, frames_iter(), fps, inputs)
        else:
            _write_mp4(out, frames_iter(), fps, (w, h), inputs)
    finally:
        progress.finish()
    return RenderResult(out, src.key, len(idx_list), idx_list, w, h, kind)


def contact_sheet(images: list[np.ndarray], labels: list[int]) -> np.ndarray:
    """A near-square grid (at most 4 columns), each tile labelled with its frame index."""
    import cv2

    if len(images) == 1:
        return images[0]
    cols = len(images) if len(images) <= 3 else min(4, math.ceil(math.sqrt(len(images))))
    rows = -(-len(images) // cols)
    h, w = images[0].shape[:2]
    scale = min(1.0, MAX_SHEET_WIDTH / (cols * w))
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    sheet = np.full((rows * th + (rows - 1) * 2, cols * tw + (cols - 1) * 2, 3), 64, np.uint8)
    for n, (img, label) in enumerate(zip(images, labels)):
        tile = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA) if scale < 1 else img
        tile = tile.copy()
        cv2.putText(tile, f"#{label}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(n, cols)
        sheet[r * (th + 2): r * (th + 2) + th, c * (tw + 2): c * (tw + 2) + tw] = tile
    return sheet


def _write_png(out: Path, images: list[np.ndarray], labels: list[int], inputs: list[Path]) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", contact_sheet(images, labels))
    if not ok:
        raise UserError(f"{text_name(out)}: PNG encoding failed")
    write_bytes_atomic(out, buf.tobytes(), inputs=inputs)


def _write_gif(out: Path, images: Iterator[np.ndarray], fps: float, inputs: list[Path]) -> None:
    from PIL import Image

    # Palette images as they come: a long GIF holds 1 byte per pixel, not 3.
    frames = [Image.fromarray(img[:, :, ::-1]).quantize(colors=64) for img in images]
    with atomic_path(out, kind="file", inputs=inputs) as tmp:
        with open(tmp, "wb") as fh:
            frames[0].save(fh, format="GIF", save_all=True, append_images=frames[1:],
                           duration=max(20, round(1000 / fps)), loop=0, disposal=1)


#: Below this much free space, an encoder that failed silently is taken to have run out of disk.
_NEARLY_FULL = 1 << 20


def _write_mp4(out: Path, images: Iterator[np.ndarray], fps: float, size: tuple[int, int],
               inputs: list[Path]) -> None:
    """Encode with OpenCV into the temporary (`atomic_path`, ending in `.mp4`: OpenCV picks the
    container from the name), check it, and let it take the output name.

    OpenCV reports no write error (a full disk gives a truncated file and exit 0), so the
    result is opened again and its frame count checked before it may take the output name.
    """
    import cv2

    with atomic_path(out, kind="file", inputs=inputs, ext=".mp4") as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        written = 0
        try:
            if not writer.isOpened():
                _encoder_failed(out, tmp.parent, "cannot open an mp4v video writer")
            for img in images:
                writer.write(img)
                written += 1
        finally:
            writer.release()
        with _no_native_stderr():  # FFmpeg logs "moov atom not found" for a truncated file
            cap = cv2.VideoCapture(str(tmp))
            try:
                got = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
            finally:
                cap.release()
        if got != written:
            _encoder_failed(out, tmp.parent, f"the encoded video holds {max(got, 0)} of {written} frames")


@contextlib.contextmanager
def _no_native_stderr() -> Iterator[None]:
    """Silence what native code writes to file descriptor 2 (our own message says it better)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _encoder_failed(out: Path, where: Path, what: str) -> None:
    if shutil.disk_usage(where).free < _NEARLY_FULL:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(out))
    raise UserError(f"{text_name(out)}: OpenCV could not write the video: {what}")
