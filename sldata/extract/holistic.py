"""One frame -> keypoints: the landmark layout of each keypoint set, and the Holistic model.

The layout (which MediaPipe landmark list lands on which indices, and what the
confidence of each part is) is kept apart from inference so it can be tested on
landmark lists built by hand: no offline, licence-clean video shows hands.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import UserError
from ..pose import KeypointSet

#: keypoint-set part -> (attribute of the Holistic result, landmark count, has visibility).
#: MediaPipe's `left_hand_landmarks` is the subject's own left hand.
PART_SOURCES: dict[str, tuple[str, int, bool]] = {
    "pose": ("pose_landmarks", 33, True),
    "face": ("face_landmarks", 468, False),
    "left_hand": ("left_hand_landmarks", 21, False),
    "right_hand": ("right_hand_landmarks", 21, False),
}


def frame_arrays(results: Any, kset: KeypointSet) -> tuple[np.ndarray, np.ndarray]:
    """Holistic results of one frame -> keypoints (N, 3) and confidences (N,), float32.

    Pose confidence is the landmark visibility; hands and face have no visibility,
    so a detected part gets 1.0. A part not detected stays zeros with confidence 0.
    """
    n = kset.num_keypoints
    kp = np.zeros((n, 3), dtype=np.float32)
    conf = np.zeros(n, dtype=np.float32)
    for part, (start, stop) in kset.parts.items():
        attr, count, has_vis = PART_SOURCES[part]
        found = getattr(results, attr, None)
        if found is None:
            continue
        lms = found.landmark
        if len(lms) < count or stop - start != count:
            raise ValueError(f"{attr}: expected {count} landmarks, got {len(lms)}")
        if has_vis:
            vals = [(lm.x, lm.y, lm.z, lm.visibility) for lm in lms[:count]]
            arr = np.asarray(vals, dtype=np.float32)
            kp[start:stop] = arr[:, :3]
            conf[start:stop] = arr[:, 3]
        else:
            kp[start:stop] = np.asarray([(lm.x, lm.y, lm.z) for lm in lms[:count]], dtype=np.float32)
            conf[start:stop] = 1.0
    return kp, conf


@dataclass(frozen=True)
class HolisticOptions:
    """Everything that changes the landmarks; recorded in every pkl and hashed for resume."""

    model_complexity: int = 1  # only 1's model ships in the mediapipe wheel; 0 and 2 need theirs downloaded
    smooth_landmarks: bool = True
    refine_face_landmarks: bool = False
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Mute C++ log lines (TFLite/absl start-up warnings) that MediaPipe writes to fd 2.

    Used only while a graph starts (build, reset, first frame), where MediaPipe
    prints a dozen harmless warnings per video; its real errors arrive as exceptions.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to mute
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class HolisticModel:
    """One MediaPipe Holistic graph, reused across videos and reset between them.

    Building a graph costs ~0.15 s; `reset()` (close + restart the run, ~10 ms)
    drops the tracking state so a video's landmarks never depend on the video
    processed before it (without it, results differ by up to 0.9 in x/y).
    The graph is built, and reset, lazily with the next frame: its models load
    in background threads that print start-up warnings until that frame returns.
    """

    def __init__(self, options: HolisticOptions):
        self.options = options
        self._graph: Any = None
        self._used = False         # a frame went through since the last reset
        self._need_reset = False

    def new_video(self) -> None:
        """Forget tracking state before a new video."""
        self._need_reset = self._used

    def process_bgr(self, frame_bgr: np.ndarray) -> Any:
        """Landmarks of one OpenCV (BGR) frame; MediaPipe wants RGB."""
        import cv2

        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        if self._graph is not None and not self._need_reset:
            return self._graph.process(rgb)
        with native_stderr_silenced():
            if self._graph is None:
                import mediapipe as mp

                self._graph = mp.solutions.holistic.Holistic(static_image_mode=False, **self.options.as_dict())
            elif self._need_reset:
                self._graph.reset()
            self._need_reset = False
            self._used = True
            return self._graph.process(rgb)

    def close(self) -> None:
        if self._graph is not None:
            with native_stderr_silenced():
                self._graph.close()
            self._graph = None


#: --model-complexity -> the pose landmark model MediaPipe Holistic loads for it.
POSE_LANDMARK_MODELS = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite",
                        2: "pose_landmark_heavy.tflite"}


def check_model_available(complexity: int) -> Path:
    """The model file `complexity` needs, refused (UserError) when the mediapipe package lacks it.

    MediaPipe downloads the lite and heavy models into its own package folder the
    first time a graph asks for them. Here that would happen inside every worker
    at once, half-way into a run, and fails on machines without network (cluster
    nodes often are): so the file must be there before any work starts.
    """
    import importlib.util

    from ..errors import require_extra

    if complexity not in POSE_LANDMARK_MODELS:
        raise UserError(f"--model-complexity must be 0, 1 or 2, not {complexity}")
    require_extra("extract", "mediapipe", "cv2")  # before any work, not in every worker
    spec = importlib.util.find_spec("mediapipe")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(list(spec.submodule_search_locations)[0]) / "modules" / "pose_landmark"
    model = folder / POSE_LANDMARK_MODELS[complexity]
    if not model.is_file():
        raise UserError(f"--model-complexity {complexity} needs MediaPipe's {model.name}, which the installed "
                        f"mediapipe {mediapipe_version()} does not ship (MediaPipe would download it at run time; "
                        f"this command never downloads models). Copy that file into {folder}/ from a machine "
                        "with network, or use --model-complexity 1 (bundled)")
    return model


def mediapipe_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mediapipe")
    except PackageNotFoundError:  # pragma: no cover - mediapipe is a dependency
        return "unknown"
