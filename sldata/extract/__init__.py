"""Pose extraction: MediaPipe Holistic over a corpus of videos, one pkl per video.

`holistic` turns one frame's landmarks into arrays for a keypoint set (layout apart
from inference); `inputs` finds videos and splits them among job-array tasks;
`spool` streams landmarks to disk so memory does not grow with a video's length;
`run` resumes, runs each video and records failures; `executors` runs the
per-video work on a local process pool or on Ray, surviving lost workers.
"""

from .inputs import discover_videos, read_video_list, shard_of, shard_videos
from .run import ExtractOptions, ExtractReport, run_extraction

__all__ = ["ExtractOptions", "ExtractReport", "discover_videos", "read_video_list", "run_extraction", "shard_of",
           "shard_videos"]
