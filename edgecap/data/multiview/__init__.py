"""Multi-view capture data: calibrated cameras, per-camera OpenPose 2D keypoints, OpenSim .trc markers."""

from edgecap.data.multiview.cameras import Camera, load_h36m_cameras, load_panoptic_cameras, load_toml_cameras
from edgecap.data.multiview.openpose import load_openpose_folder, load_openpose_views, read_openpose_json, to_h36m
from edgecap.data.multiview.trc import Trc, read_trc, write_trc

__all__ = [
    "Camera", "Trc", "load_h36m_cameras", "load_openpose_folder", "load_openpose_views", "load_panoptic_cameras",
    "load_toml_cameras", "read_openpose_json", "read_trc", "to_h36m", "write_trc",
]
