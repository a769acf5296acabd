"""DensePose-COCO loader: `densepose_coco_2014_{train,minival,valminusminival,test}.json` plus a
COCO image directory (train2014 for train; val2014 for minival and valminusminival), or the
same-format output of `edgecap.data.synthetic_densepose.write_synthetic_densepose`.

Format (facebookresearch/DensePose `challenge/2018_COCO_DensePose/data_format.md`, detectron2
`projects/DensePose/doc/DENSEPOSE_DATASETS.md`): COCO `images` / `annotations` /
`categories`; person annotations with DensePose data add
- `dp_x`, `dp_y`: point coordinates in the box, scaled so the box is 256 x 256;
- `dp_I`: fine part 1..24 (floats in the files), `dp_U`, `dp_V`: chart coordinates in [0, 1];
- `dp_masks`: 14 coarse part masks, each a 256 x 256 RLE over the box, or an empty entry for a
  part that is not visible.
Annotations without `dp_*` (most small or crowded people) are kept for box training with
`has_dp = False`; `iscrowd = 1` regions come back separately as boxes to ignore.

Image coordinates of the points follow the training code (Detectron's body_uv_rcnn and
detectron2's DensePoseDataRelative): x = x0 + dp_x * w / 256, y = y0 + dp_y * h / 256 for a
bbox [x0, y0, w, h]. (The official evaluation scripts divide by 255 instead; the difference is
at most one 256th of the box.) Coarse masks decode like Detectron's GetDensePoseMask: part k
(1..14) is painted in order, so a later part wins where two overlap.

The json is read and checked once when the dataset is built (missing or corrupt file, missing
fields, unknown image ids, dp arrays of different lengths, labels out of range, missing image
files); masks are decoded per sample, so the full train set stays a few hundred MB.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from pycocotools.coco import COCO

from edgecap import EdgecapError
from edgecap.data.densepose_parts import DP_MASK_SIZE, NUM_COARSE, NUM_PARTS

DP_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V", "dp_masks")
_POINT_KEYS = ("dp_x", "dp_y", "dp_I", "dp_U", "dp_V")
_IMAGE_FIELDS = ("id", "file_name", "width", "height")
_ANN_FIELDS = ("id", "image_id", "bbox", "category_id", "iscrowd")


@dataclass(frozen=True)
class DensePoseSample:
    """One image. K person instances (not crowd), in annotation order.

    boxes (K, 4) float32 xyxy image pixels; ann_ids (K,) int64; has_dp (K,) bool;
    points: K arrays (P_k, 5) float32 = x, y (image pixels), I (1..24), U, V, with P_k = 0 when
    has_dp is False; coarse_masks (K, 256, 256) uint8 coarse labels 0..14 over each box (all 0
    when has_dp is False); crowd_boxes (C, 4) float32 xyxy iscrowd regions."""

    image_id: int
    image_path: Path
    height: int
    width: int
    boxes: np.ndarray
    ann_ids: np.ndarray
    has_dp: np.ndarray
    points: list[np.ndarray]
    coarse_masks: np.ndarray
    crowd_boxes: np.ndarray

    @property
    def num_instances(self) -> int:
        return len(self.boxes)


def dp_points_to_image(dp_x, dp_y, bbox_xywh) -> tuple[np.ndarray, np.ndarray]:
    """Box-frame (256 x 256) point coordinates -> image pixels for a COCO [x0, y0, w, h] box."""
    x0, y0, w, h = (float(b) for b in bbox_xywh)
    return (x0 + np.asarray(dp_x, np.float64) * w / DP_MASK_SIZE,
            y0 + np.asarray(dp_y, np.float64) * h / DP_MASK_SIZE)


def _decode_rle(rle: dict, where: str) -> np.ndarray:
    try:
        if isinstance(rle.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(rle, *rle["size"])
        mask = mask_utils.decode(rle)
    except Exception as e:  # pycocotools raises assorted types on bad counts
        raise EdgecapError(f"{where}: cannot decode RLE ({type(e).__name__}: {e})") from e
    if mask.shape != (DP_MASK_SIZE, DP_MASK_SIZE):
        raise EdgecapError(f"{where}: mask is {mask.shape}, expected {DP_MASK_SIZE}x{DP_MASK_SIZE}")
    return mask


def decode_dp_masks(dp_masks: list, where: str = "dp_masks") -> np.ndarray:
    """14 RLEs (or empty entries) -> (256, 256) uint8 coarse label map 0..14."""
    _check_dp_masks(dp_masks, where)
    out = np.zeros((DP_MASK_SIZE, DP_MASK_SIZE), np.uint8)
    for k, rle in enumerate(dp_masks):
        if rle:
            out[_decode_rle(rle, f"{where}[{k}]") > 0] = k + 1
    return out


def coarse_channels(label_map: np.ndarray) -> np.ndarray:
    """(..., 256, 256) coarse labels -> (..., 14, 256, 256) bool, channel k = label k + 1."""
    labels = np.asarray(label_map)
    return labels[..., None, :, :] == np.arange(1, NUM_COARSE + 1)[:, None, None]


def _check_dp_masks(dp_masks, where: str) -> None:
    if not isinstance(dp_masks, list) or len(dp_masks) != NUM_COARSE:
        got = f"a list of {len(dp_masks)}" if isinstance(dp_masks, list) else type(dp_masks).__name__
        raise EdgecapError(f"{where}: dp_masks must be a list of {NUM_COARSE} RLEs (or empty entries), got {got}")
    for k, rle in enumerate(dp_masks):
        if not rle:
            continue
        if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
            raise EdgecapError(f"{where}[{k}]: expected an RLE dict with 'counts' and 'size', got {str(rle)[:60]}")
        if list(rle["size"]) != [DP_MASK_SIZE, DP_MASK_SIZE]:
            raise EdgecapError(f"{where}[{k}]: size {rle['size']}, expected [{DP_MASK_SIZE}, {DP_MASK_SIZE}]")


def _check_annotation(ann: dict, where: str) -> bool:
    """Structure and value checks; returns whether the annotation carries DensePose data."""
    for key in _ANN_FIELDS:
        if key not in ann:
            raise EdgecapError(f"{where}: missing field {key!r}")
    box = ann["bbox"]
    if (not isinstance(box, list) or len(box) != 4 or not all(isinstance(b, (int, float)) for b in box)
            or not all(math.isfinite(b) for b in box) or box[2] < 0 or box[3] < 0):
        raise EdgecapError(f"{where}: bbox must be [x, y, w, h] with w, h >= 0, got {box}")
    present = [k for k in DP_KEYS if k in ann]
    if not present:
        return False
    if len(present) != len(DP_KEYS):
        missing = [k for k in DP_KEYS if k not in ann]
        raise EdgecapError(f"{where}: has {present} but is missing {missing}")
    lengths = {}
    for key in _POINT_KEYS:
        if not isinstance(ann[key], list):
            raise EdgecapError(f"{where}: {key} must be a list, got {type(ann[key]).__name__}")
        lengths[key] = len(ann[key])
    if len(set(lengths.values())) != 1:
        raise EdgecapError(f"{where}: dp arrays have different lengths {lengths}")
    try:
        arr = {k: np.asarray(ann[k], dtype=np.float64) for k in _POINT_KEYS}
    except (TypeError, ValueError) as e:
        raise EdgecapError(f"{where}: dp arrays must hold numbers ({e})") from e
    for k, a in arr.items():
        if a.ndim != 1 or not np.isfinite(a).all():
            raise EdgecapError(f"{where}: {k} must be a flat list of finite numbers")
    i = arr["dp_I"]
    if i.size and (np.any(i != np.round(i)) or i.min() < 1 or i.max() > NUM_PARTS):
        raise EdgecapError(f"{where}: dp_I must be integers 1..{NUM_PARTS}, got values in [{i.min()}, {i.max()}]")
    for k in ("dp_U", "dp_V"):
        a = arr[k]
        if a.size and (a.min() < -1e-6 or a.max() > 1 + 1e-6):
            raise EdgecapError(f"{where}: {k} must be in [0, 1], got values in [{a.min()}, {a.max()}]")
    _check_dp_masks(ann["dp_masks"], f"{where} dp_masks")
    return True


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise EdgecapError(f"DensePose annotation file {path} not found")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgecapError(f"DensePose annotation file {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise EdgecapError(f"{path}: expected a COCO dict with an 'images' list")
    for key in ("annotations", "categories"):
        if key in data and not isinstance(data[key], list):
            raise EdgecapError(f"{path}: {key!r} must be a list")
    return data


class DensePoseCOCO:
    """DensePose-COCO (or synthetic, same format) as a list of `DensePoseSample`s.

    json_path: the annotation file; image_dir: where the images' `file_name`s are.
    dp_only: keep only images with at least one DensePose-annotated person.
    check_images: fail early if an image file is missing.
    min_box_size: person boxes narrower or shorter than this (pixels) are dropped.
    """

    def __init__(self, json_path: str | Path, image_dir: str | Path, *, dp_only: bool = False,
                 check_images: bool = True, min_box_size: float = 1.0):
        self.json_path, self.image_dir = Path(json_path), Path(image_dir)
        data = _read_json(self.json_path)
        images = data["images"]
        anns = data.get("annotations", [])
        for n, img in enumerate(images):
            missing = [k for k in _IMAGE_FIELDS if not isinstance(img, dict) or k not in img]
            if missing:
                raise EdgecapError(f"{self.json_path}: images[{n}] is missing {missing}")
            kinds = {"id": int, "file_name": str, "width": int, "height": int}
            wrong = [k for k, kind in kinds.items() if not isinstance(img[k], kind) or isinstance(img[k], bool)]
            if wrong or not img["file_name"] or img["width"] < 1 or img["height"] < 1:
                raise EdgecapError(f"{self.json_path}: images[{n}] has a bad {', '.join(wrong) or 'size or file_name'}"
                                   f": {({k: img[k] for k in kinds})}")
        image_ids = {img["id"] for img in images}
        if len(image_ids) != len(images):
            raise EdgecapError(f"{self.json_path}: duplicate image ids")

        if "categories" in data:
            person = {c["id"] for c in data["categories"] if isinstance(c, dict) and c.get("name") == "person"}
            if anns and not person:
                raise EdgecapError(f"{self.json_path}: no 'person' category in {data['categories'][:3]}")
        else:
            person = None  # DensePose files hold people only
        self._dp = {}
        for n, ann in enumerate(anns):
            if not isinstance(ann, dict):
                raise EdgecapError(f"{self.json_path}: annotations[{n}] must be a dict, got {type(ann).__name__}")
            where = f"{self.json_path}: annotations[{n}] (id {ann.get('id', '?')})"
            has_dp = _check_annotation(ann, where)
            if ann["id"] in self._dp:
                raise EdgecapError(f"{where}: duplicate annotation id")
            if ann["image_id"] not in image_ids:
                raise EdgecapError(f"{where}: image_id {ann['image_id']} is not in 'images'")
            self._dp[ann["id"]] = has_dp
        self._person = person
        self.min_box_size = float(min_box_size)

        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco.createIndex()

        ids = sorted(image_ids)
        if dp_only:
            ids = [i for i in ids if any(self._dp[a["id"]] and self._is_person(a) for a in self.coco.imgToAnns[i])]
        self.image_ids = ids
        if check_images:
            names = [self.coco.imgs[i]["file_name"] for i in ids]
            missing = [name for name in names if not (self.image_dir / name).is_file()]
            if missing:
                raise EdgecapError(
                    f"{len(missing)} of {len(ids)} images listed in {self.json_path.name} are missing from "
                    f"{self.image_dir}, e.g. {missing[:3]}")

    def _is_person(self, ann: dict) -> bool:
        return self._person is None or ann["category_id"] in self._person

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> DensePoseSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return self.sample(self.image_ids[index])

    def sample(self, image_id: int) -> DensePoseSample:
        """The sample of one image id."""
        if image_id not in self.coco.imgs:
            raise EdgecapError(f"image id {image_id} is not in {self.json_path}")
        img = self.coco.imgs[image_id]
        boxes, ann_ids, has_dp, points, masks, crowd = [], [], [], [], [], []
        for ann in self.coco.imgToAnns.get(image_id, []):
            if not self._is_person(ann):
                continue
            x0, y0, w, h = (float(b) for b in ann["bbox"])
            if ann["iscrowd"]:
                crowd.append((x0, y0, x0 + w, y0 + h))
                continue
            if w < self.min_box_size or h < self.min_box_size:
                continue
            boxes.append((x0, y0, x0 + w, y0 + h))
            ann_ids.append(ann["id"])
            dp = self._dp[ann["id"]]
            has_dp.append(dp)
            if dp:
                x, y = dp_points_to_image(ann["dp_x"], ann["dp_y"], ann["bbox"])
                iuv = [ann["dp_I"], ann["dp_U"], ann["dp_V"]]
                points.append(np.stack([x, y, *iuv], 1).astype(np.float32).reshape(-1, 5))
                masks.append(decode_dp_masks(ann["dp_masks"], f"{self.json_path.name} annotation {ann['id']} dp_masks"))
            else:
                points.append(np.zeros((0, 5), np.float32))
                masks.append(np.zeros((DP_MASK_SIZE, DP_MASK_SIZE), np.uint8))
        return DensePoseSample(
            image_id=image_id, image_path=self.image_dir / img["file_name"], height=int(img["height"]),
            width=int(img["width"]), boxes=np.array(boxes, np.float32).reshape(-1, 4),
            ann_ids=np.array(ann_ids, np.int64), has_dp=np.array(has_dp, bool), points=points,
            coarse_masks=np.array(masks, np.uint8).reshape(-1, DP_MASK_SIZE, DP_MASK_SIZE),
            crowd_boxes=np.array(crowd, np.float32).reshape(-1, 4),
        )


def load_densepose_coco(json_path: str | Path, image_dir: str | Path, **kwargs) -> DensePoseCOCO:
    """See `DensePoseCOCO`."""
    return DensePoseCOCO(json_path, image_dir, **kwargs)
