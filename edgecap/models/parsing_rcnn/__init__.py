"""Parsing R-CNN family: DensePose R-CNN, Parsing R-CNN and Mobile Parsing R-CNN (A, B), Table 4 of
"Making DensePose Fast and Light" (WACV 2021), with static-shape, export-safe inference.

    model = build_parsing_rcnn("mobile_b").eval()        # or preset("mobile_b", input_size=512)
    boxes, scores, part_logits, u, v, coarse_logits = model(image)   # image (1, 3, 320, 320)
"""

from edgecap.models.parsing_rcnn.config import PRESETS, ParsingRCNNConfig, preset
from edgecap.models.parsing_rcnn.model import ParsingRCNN, build_parsing_rcnn

__all__ = ["PRESETS", "ParsingRCNN", "ParsingRCNNConfig", "build_parsing_rcnn", "preset"]
