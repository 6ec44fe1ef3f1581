"""DPC on real signing: the pose of the real signer of pose-format's test video (shared upstream data).

`signer_test_video.pose` was written by pose-format's own `video_to_pose` from a
real 58-frame recording of a signer; it is imported here through the project's
own path (`sldata.interop.import_pose`) and trained on with the window shrunk to
fit 58 frames. Real motion, real torch steps: losses must stay finite and fall.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import ROOT

SHARED = ROOT.parent / "shared"
SIGNER = SHARED / "data" / "upstream" / "pose_format" / "signer_test_video.pose"


@pytest.mark.skipif(not SIGNER.is_file(), reason=f"shared upstream data absent ({SIGNER})")
def test_dpc_learns_on_the_real_signer(tmp_path: Path) -> None:
    pytest.importorskip("pose_format")
    from sldata.interop import import_pose
    from sldata.pose import PoseH5
    from sltrain.config import build_config
    from sltrain.loop import train
    from sltrain.metrics import read_csv

    h5 = tmp_path / "signer.h5"
    imported = import_pose(SIGNER, h5)
    assert imported.count == 1 and not imported.failed
    with PoseH5(h5) as pose:
        assert pose.keys() == ["signer_test_video"] and pose.num_frames("signer_test_video") == 58
    cfg = build_config({
        "recipe": "dpc",
        # 4 blocks x 4 frames, every 2nd frame: 32 of the 58 frames per window, 27 possible starts
        "data": {"path": str(h5), "num_seq": 4, "seq_len": 4, "downsample": 2, "pred_step": 2,
                 "windows_per_video": 64},
        "model": {"encoder": {"channels": [16, 32], "temporal_kernel": 3}},  # default negatives
        "optim": {"name": "adamw", "lr": 3e-3, "warmup_steps": 3},
        "trainer": {"out_dir": str(tmp_path / "run"), "max_steps": 30, "batch_size": 8, "num_workers": 0,
                    "device": "cpu", "threads": 1, "log_every": 1, "save_every": 30, "tensorboard": False},
    })
    result = train(cfg)
    assert result.steps == 30 and result.data["used"] == 1 and result.data["padded"] == 0
    rows = read_csv(tmp_path / "run" / "train.csv")
    losses = [float(r["loss"]) for r in rows]
    assert all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, losses
    steps = [float(r["pretext_top1_step"]) for r in rows]
    assert sum(steps[-5:]) / 5 > 0.6, steps  # chance is 1/2: it tells the steps of the real motion apart
