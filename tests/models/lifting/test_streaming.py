import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.core.runner import TorchRunner
from edgecap.data.synthetic_motion import generate_motion
from edgecap.data.windows import PoseWindows
from edgecap.models.lifting.model import LiftingConfig, TemporalLifter
from edgecap.models.lifting.streaming import StreamingLifter


@pytest.mark.parametrize("target", ["last", "centre"])
def test_streaming_equals_batch_path(target):
    cfg = LiftingConfig(hidden=32, blocks=1, window=5, target=target)
    model = TemporalLifter(cfg).eval()
    seqs = generate_motion(2, 30, seed=9)
    runner = TorchRunner(model, ["keypoints_2d"], ["joints_3d_mm"])
    windows = PoseWindows.from_sequences(list(seqs.keypoints_2d), list(seqs.joints_3d_mm), cfg.window, target)
    batch = runner.run({"keypoints_2d": windows.windows(slice(None))[0]})["joints_3d_mm"]
    stream = StreamingLifter(runner, cfg.window, 17, target)
    for s in range(2):
        poses = stream.run_sequence(seqs.keypoints_2d[s])
        assert poses.shape == (30, 17, 3)
        np.testing.assert_allclose(poses, batch[windows.sequence_ids == s], atol=1e-4)


def test_streaming_latency_and_bad_frames():
    model = TemporalLifter(LiftingConfig(hidden=16, blocks=1, window=5, target="centre")).eval()
    stream = StreamingLifter(TorchRunner(model, ["keypoints_2d"], ["joints_3d_mm"]), 5, 17, "centre")
    frame = np.ones((17, 3), np.float32)
    assert stream.push(frame) is None and stream.push(frame) is None
    index, pose = stream.push(frame)
    assert index == 0 and pose.shape == (17, 3)
    assert [i for i, _ in stream.flush()] == [1, 2]
    with pytest.raises(EdgecapError, match="shape \\(16, 3\\), expected \\(17, 3\\)"):
        stream.push(np.ones((16, 3), np.float32))
    bad = frame.copy()
    bad[3, 0] = np.nan
    with pytest.raises(EdgecapError, match="NaN"):
        stream.push(bad)
