"""Person box AP through pycocotools' COCOeval (iouType "bbox"), with its printing silenced.

Ground truth is a COCO dataset dict: {"images": [{"id", "height", "width"}, ...],
"annotations": [{"image_id", "bbox": [x, y, w, h], ...}, ...], "categories": [...]}.
Missing annotation fields get defaults: category_id 1, iscrowd 0, area w * h (COCO's own
area is the mask area; give it when you have it). Missing categories: [{"id": 1, "name": "person"}].
Annotation ids are renumbered 1..N: pycocotools reads an id of 0 as "unmatched".

Detections are dicts {"image_id", "bbox": [x, y, w, h] pixels, "score", "category_id": 1}.
Results are pycocotools' numbers; -1 means no ground truth in that area range.
"""

from __future__ import annotations

import contextlib
import io

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

PERSON = {"id": 1, "name": "person"}


def load_coco(gt: dict) -> COCO:
    """A pycocotools COCO index of a ground-truth dict (copied, defaults filled in, ids 1..N)."""
    anns = []
    for k, ann in enumerate(gt["annotations"], 1):
        _, _, w, h = ann["bbox"]
        anns.append({"category_id": 1, "iscrowd": 0, "area": w * h, **ann, "id": k})
    return _index(list(gt["images"]), list(gt.get("categories") or [PERSON]), anns)


def load_detections(coco_gt: COCO, detections: list[dict]) -> COCO:
    """A COCO index of detections, like COCO.loadRes for boxes but also for an empty list."""
    known = set(coco_gt.getImgIds())
    anns = []
    for k, det in enumerate(detections, 1):
        if det["image_id"] not in known:
            raise ValueError(f"detection {k - 1}: image_id {det['image_id']} is not in the ground truth")
        _, _, w, h = det["bbox"]
        anns.append({"category_id": 1, **det, "id": k, "area": w * h, "iscrowd": 0})
    return _index(coco_gt.dataset["images"], coco_gt.dataset["categories"], anns)


def _index(images: list, categories: list, annotations: list) -> COCO:
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def box_ap(gt: dict, detections: list[dict]) -> dict[str, float]:
    """COCO box AP: {"AP", "AP50", "AP75", "APs", "APm", "APl"} in [0, 1] (-1: no GT in range)."""
    coco_gt = load_coco(gt)
    ev = COCOeval(coco_gt, load_detections(coco_gt, detections), iouType="bbox")
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(("AP", "AP50", "AP75", "APs", "APm", "APl"), ev.stats)}
