"""Export-safe detection ops: static shapes, tensors in and out, one nn.Module per op (so
quantizers can keep them fp32 by module name). Each module's docstring says why the op is
hand-written instead of using torchvision's custom ops."""

from edgecap.models.ops.boxes import AnchorGenerator, BoxCoder, box_area, box_iou
from edgecap.models.ops.nms import ClusterNMS
from edgecap.models.ops.roi_align import MultiLevelRoIAlign, RoIAlign
from edgecap.models.ops.roi_pool import RoIPool

__all__ = [
    "AnchorGenerator", "BoxCoder", "ClusterNMS", "MultiLevelRoIAlign", "RoIAlign", "RoIPool", "box_area", "box_iou",
]
