"""DensePose AP: COCO AP whose match score is the geodesic point similarity (GPS) of the
dense correspondences, or GPSm = sqrt(GPS * mask IoU).

Facts follow the official evaluators, facebookresearch/DensePose
`detectron/datasets/densepose_cocoeval.py` and facebookresearch/detectron2
`projects/DensePose/densepose/evaluation/densepose_coco_evaluation.py`:

- GPS(det, person) = mean over the person's annotated points p of exp(-g_p^2 / (2 kappa_p^2)),
  g_p the geodesic distance on the body surface between the annotated point and the surface
  point the detection predicts at that pixel. Points outside the detection box, or where it
  predicts background (I = 0), have g = inf (similarity 0) but still count in the mean.
- kappa: the paper (Gueler et al. 2018) uses kappa = 0.255 m (g = 0.3 m gives 0.5). The official
  code instead normalises by the coarse body part of the GT point (`Mean_Distances` indexed by
  `CoarseParts`): SMPL_PART_KAPPA, the default, so numbers compare with published DensePose-COCO
  results. Pass kappa=PAPER_KAPPA for the paper's constant.
- GPSm = sqrt(GPS * IoU(detection mask, person mask)), detection mask = I > 0 over its box
  (detectron2's DensePoseEvalMode.GPSM).
- COCO matching and accumulation (pycocotools COCOeval, reused here) with thresholds
  0.5:0.05:0.95, at most 20 detections per image, areas all / medium 32^2..96^2 / large;
  reported AP, AP50, AP75, APm, APl. Persons without dense points (no dp_x) are ignored; on an
  image whose persons are all ignored (or that has none) every detection is ignored; a
  detection unmatched at the strictest threshold whose box IoU with a person is >= 0.8 takes
  that person's ignore flag.

Ground truth (DensePose-COCO layout): {"images": [{"id", "height", "width"}], "annotations":
[{"image_id", "bbox": [x, y, w, h], "area", "iscrowd", "dp_x", "dp_y", "dp_I", "dp_U", "dp_V",
"dp_masks"}], "categories"}. dp_x, dp_y (P,) lie in 0..255 over the person box: the point is at
image (x + dp_x * w / 255, y + dp_y * h / 255). dp_I (P,) parts 1..24, dp_U, dp_V (P,) in [0, 1].
GPSm needs a person mask: "dp_masks" (up to 14 part RLEs over the box at 256 x 256, as in
DensePose-COCO) or else the COCO "segmentation". The 255 is the official evaluators'; detectron2's
training code (`densepose/modeling/losses/utils.py`) divides by 256 instead, as does
edgecap.data.synthetic_densepose: pass dp_scale=256 for annotations written that way.

Detections: {"image_id", "bbox": [x, y, w, h] image pixels, "score", "category_id": 1,
"I": (Hm, Wm) int part index 0..24 (0 = background), "U", "V": (Hm, Wm) float in [0, 1]}.
The maps cover the box. At box resolution, (Hm, Wm) = (max(int(h), 1), max(int(w), 1)), map
pixel (r, c) covers box offsets [c, c+1) x [r, r+1), exactly as the official code reads its
(3, H, W) labels_uv_uint8. Any other size (e.g. a fixed 112 x 112 head output already decoded
to I, U, V) is stretched over the box by nearest-neighbour sampling: interpolating U, V would
mix the charts of neighbouring parts. U, V are used as floats, not quantised to uint8 as the
official code stores them (a difference of at most 1/255 of a chart).
"""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path
from typing import Protocol

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import COCOeval

from edgecap import EdgecapError
from edgecap.core.io import ArrayOnlyUnpickler
from edgecap.metrics.box_ap import load_coco, load_detections

NUM_PARTS = 24
PAPER_KAPPA = 0.255
# Official normalisation (metres): Mean_Distances of the 8 coarse parts (torso, hands, feet, upper
# legs, lower legs, upper arms, lower arms, head) looked up through CoarseParts by fine part
# 0..24. Index 0 (background) is never used: GT points always lie on a part.
_MEAN_DISTANCES = np.array([0, 0.351, 0.107, 0.126, 0.237, 0.173, 0.142, 0.128, 0.150])
_COARSE_PARTS = np.array([0, 1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8])
SMPL_PART_KAPPA = _MEAN_DISTANCES[_COARSE_PARTS]  # (25,)


class GeodesicModel(Protocol):
    def distance(self, i1, u1, v1, i2, u2, v2) -> np.ndarray:
        """Geodesic distances (N,) in metres between surface points (I, U, V) given as (N,)
        arrays; inf where either point is background (I = 0) or not on the model."""


class ChartGeodesics:
    """Approximate geodesics for edgecap's synthetic bodies, in the canonical pose.

    Within one part the distance is the Euclidean distance of the chart points scaled by the
    part's size: sqrt((su * dU)^2 + (sv * dV)^2), exact only for a flat, uniformly stretched
    chart. Points on different parts are inf apart (similarity 0), even neighbours across a
    seam, whose true surface distance is small. An approximation of geodesics on the
    canonical-pose surface, not the SMPL tables of TableGeodesics.

    part_sizes: (24, 2) metres, row k - 1 = (su, sv) of part k, the length a full unit of U
    and of V spans on that part. The default is a rough adult (about 1.75 m) and is the same
    along U and V. For edgecap's synthetic bodies, `edgecap.data.synthetic_geodesics` builds
    true surface geodesics (seams included) instead; this class stays for hand-built cases.
    """

    # Rough extents in metres by DensePose part: 1-2 torso, 3-4 hands, 5-6 feet, 7-10 upper
    # legs, 11-14 lower legs, 15-18 upper arms, 19-22 lower arms, 23-24 head.
    DEFAULT_PART_SIZES = np.repeat([[0.60], [0.20], [0.25], [0.45], [0.45], [0.30], [0.27], [0.30]],
                                   [2, 2, 2, 4, 4, 4, 4, 2], axis=0).repeat(2, axis=1)  # (24, 2)

    def __init__(self, part_sizes: np.ndarray | None = None):
        sizes = np.asarray(self.DEFAULT_PART_SIZES if part_sizes is None else part_sizes, float)
        if sizes.shape != (NUM_PARTS, 2) or not (sizes > 0).all():
            raise ValueError(f"part_sizes must be (24, 2) positive metres, got shape {sizes.shape}")
        self.part_sizes = np.vstack([np.zeros((1, 2)), sizes])  # (25, 2), row 0 = background

    def distance(self, i1, u1, v1, i2, u2, v2) -> np.ndarray:
        i1, i2 = np.asarray(i1, dtype=int), np.asarray(i2, dtype=int)
        valid = (i1 == i2) & (i1 >= 1) & (i1 <= NUM_PARTS)
        s = self.part_sizes[np.where(valid, i1, 0)]
        d = np.hypot(s[:, 0] * (np.asarray(u1) - u2), s[:, 1] * (np.asarray(v1) - v2))
        return np.where(valid, d, np.inf)


class TableGeodesics:
    """Geodesics on SMPL from the official DensePose evaluation tables (user-supplied files).

    A point (I, U, V) goes to the nearest (in U, V) point of part I of the subdivided SMPL mesh,
    then to that point's vertex of the geodesic table; distances are read from the table.

    part_ids: (P,) part 1..24 of each subdivided-mesh point; uv: (P, 2); vertex_ids: (P,) 0-based
    table vertex of each point; pdist: (n (n - 1) / 2,) distances between table vertices a > b
    at index a (a - 1) / 2 + b (the official "compact representation").
    """

    def __init__(self, part_ids: np.ndarray, uv: np.ndarray, vertex_ids: np.ndarray, pdist: np.ndarray):
        part_ids, vertex_ids = np.asarray(part_ids, dtype=int), np.asarray(vertex_ids, dtype=np.int64)
        pdist = np.asarray(pdist).reshape(-1)  # a view: the SMPL table has 3.8e8 entries
        n = int(round((1 + np.sqrt(1 + 8 * pdist.size)) / 2))
        if n * (n - 1) // 2 != pdist.size:
            raise ValueError(f"pdist has {pdist.size} entries, not n (n - 1) / 2 for any n")
        if vertex_ids.min() < 0 or vertex_ids.max() >= n:
            raise ValueError(f"vertex ids must lie in [0, {n}), got [{vertex_ids.min()}, {vertex_ids.max()}]")
        self.pdist = pdist
        self._parts = {k: (np.asarray(uv, float)[part_ids == k], vertex_ids[part_ids == k])
                       for k in range(1, NUM_PARTS + 1)}

    @classmethod
    def from_files(cls, smpl_subdiv: str | Path, subdiv_transform: str | Path, pdist_matrix: str | Path):
        """Load the files the official evaluators use (https://dl.fbaipublicfiles.com/densepose/data/).

        - `SMPL_subdiv.mat`: fields U_subdiv, V_subdiv, Part_ID_subdiv, each P = 29408 values.
        - `SMPL_SUBDIV_TRANSFORM.mat`: field index, (P,) 1-based table vertex (1..27554) of each point.
        - `Pdist_matrix.pkl` (detectron2): a Python 2 pickle {"Pdist_matrix": (n (n - 1) / 2, 1)};
          only numpy arrays are unpickled. Also `Pdist_matrix.mat` (DensePose repo, field
          Pdist_matrix; MATLAB v7.3 needs h5py) or a `.npy` array of the same values.
        """
        uv = np.stack([_mat_field(smpl_subdiv, "U_subdiv"), _mat_field(smpl_subdiv, "V_subdiv")], axis=1)
        parts = _mat_field(smpl_subdiv, "Part_ID_subdiv")
        vertex_ids = _mat_field(subdiv_transform, "index").astype(np.int64) - 1
        return cls(parts, uv, vertex_ids, _load_pdist(Path(pdist_matrix)))

    def closest_vertices(self, i, u, v) -> np.ndarray:
        """Table vertex (N,) of each point (I, U, V), -1 for background or unknown parts."""
        i = np.asarray(i, dtype=int)
        uv = np.stack([np.asarray(u, float), np.asarray(v, float)], axis=-1)
        out = np.full(i.shape, -1, dtype=np.int64)
        for k in np.unique(i):
            part_uv, part_vertices = self._parts.get(int(k), (np.empty((0, 2)), None))
            if len(part_uv):
                sel = i == k
                d2 = ((uv[sel][:, None] - part_uv[None]) ** 2).sum(-1)
                out[sel] = part_vertices[d2.argmin(axis=1)]
        return out

    def distance(self, i1, u1, v1, i2, u2, v2) -> np.ndarray:
        a, b = self.closest_vertices(i1, u1, v1), self.closest_vertices(i2, u2, v2)
        hi, lo = np.maximum(a, b), np.minimum(a, b)
        off_diagonal = (lo >= 0) & (hi != lo)
        k = np.where(off_diagonal, hi * (hi - 1) // 2 + lo, 0)
        d = np.where(off_diagonal, self.pdist[k], 0.0).astype(float)
        return np.where(lo >= 0, d, np.inf)


def _mat_field(path: str | Path, key: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path), variable_names=[key])[key]).reshape(-1)
    except (OSError, ValueError, NotImplementedError) as e:
        raise EdgecapError(f"{path}: cannot read a MATLAB file ({e})") from e
    except KeyError:
        raise EdgecapError(f"{path}: no field {key!r}") from None


def _load_pdist(path: Path) -> np.ndarray:
    if not path.is_file():
        raise EdgecapError(f"geodesic table {path} not found")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                table = ArrayOnlyUnpickler(f, encoding="latin1").load()
            except (pickle.UnpicklingError, ValueError, EOFError, AttributeError, TypeError, IndexError) as e:
                raise EdgecapError(f"{path}: not a pickle of numpy arrays ({e})") from e
        if not isinstance(table, dict) or not isinstance(table.get("Pdist_matrix"), np.ndarray):
            raise EdgecapError(f"{path}: expected a dict with a numpy array 'Pdist_matrix'")
        return table["Pdist_matrix"]
    if path.suffix == ".mat":
        try:
            return _mat_field(path, "Pdist_matrix")
        except EdgecapError as e:
            if not isinstance(e.__cause__, NotImplementedError):  # scipy's answer to v7.3 (HDF5)
                raise
        try:
            import h5py
        except ImportError:
            raise EdgecapError(f"{path}: MATLAB v7.3 (HDF5) file; install h5py or save the table as .npy") from None
        with h5py.File(path, "r") as f:
            return np.asarray(f["Pdist_matrix"]).reshape(-1)
    raise EdgecapError(f"{path}: geodesic table must be .pkl, .mat or .npy")


def _box_maps(det: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The detection's I, U, V resampled (nearest) to box resolution (max(int(h),1), max(int(w),1))."""
    maps = [np.asarray(det[k]) for k in "IUV"]
    if maps[0].ndim != 2 or any(m.shape != maps[0].shape for m in maps):
        raise ValueError(f"detection I, U, V must be 2-D maps of one shape, got {[m.shape for m in maps]}")
    _, _, w, h = det["bbox"]
    (hm, wm), rows, cols = maps[0].shape, max(int(h), 1), max(int(w), 1)
    r = np.minimum(((np.arange(rows) + 0.5) * hm / rows).astype(int), hm - 1)
    c = np.minimum(((np.arange(cols) + 0.5) * wm / cols).astype(int), wm - 1)
    i, u, v = (m[np.ix_(r, c)] for m in maps)
    return i.astype(int), u.astype(float), v.astype(float)


def gps_score(det: dict, ann: dict, geodesics: GeodesicModel, kappa: float | np.ndarray = SMPL_PART_KAPPA,
              dp_scale: float = 255.0) -> float:
    """GPS in [0, 1] of one detection against one annotated person (formats in the module doc).

    kappa: a float in metres, or (25,) per fine part of the GT point (SMPL_PART_KAPPA).
    dp_scale: dp_x, dp_y are in units of box size / dp_scale.
    """
    gx, gy, gw, gh = ann["bbox"]
    i_dt, u_dt, v_dt = _box_maps(det)
    # Pixel in the detection box of each GT point; int() truncates, as in the official code.
    px = (np.asarray(ann["dp_x"], float) * gw / dp_scale + gx - det["bbox"][0]).astype(int)
    py = (np.asarray(ann["dp_y"], float) * gh / dp_scale + gy - det["bbox"][1]).astype(int)
    inside = (px >= 0) & (py >= 0) & (px < i_dt.shape[1]) & (py < i_dt.shape[0])
    i_gt = np.asarray(ann["dp_I"], dtype=int)
    on_body = i_gt > 0
    if not inside.any() or not on_body.any():
        return 0.0
    px, py = np.where(inside, px, 0), np.where(inside, py, 0)
    i_pred = np.where(inside, i_dt[py, px], 0)
    g = geodesics.distance(i_gt[on_body], np.asarray(ann["dp_U"])[on_body], np.asarray(ann["dp_V"])[on_body],
                           i_pred[on_body], u_dt[py, px][on_body], v_dt[py, px][on_body])
    k = np.asarray(kappa, float)
    k = k[i_gt[on_body]] if k.ndim else k
    return float(np.mean(np.exp(-(g**2) / (2 * k**2))))


def _paste(mask: np.ndarray, bbox, height: int, width: int) -> dict:
    """RLE of a box-resolution mask placed at int(x), int(y) in a height x width image."""
    x, y = int(bbox[0]), int(bbox[1])
    out = np.zeros((height, width), dtype=np.uint8)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + mask.shape[1], width), min(y + mask.shape[0], height)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = mask[y0 - y : y1 - y, x0 - x : x1 - x]
    return mask_utils.encode(np.asfortranarray(out))


class _DensePoseEval(COCOeval):
    """pycocotools COCOeval with GPS (or GPSm) as the match score.

    Built in "keypoints" mode, whose parameters (maxDets [20], areas all/medium/large) and
    summary (AP, AP50, AP75, APm, APl) are DensePose's; computeOks is replaced by GPS.
    """

    def __init__(self, coco_gt, coco_dt, geodesics: GeodesicModel, kappa, gpsm: bool, dp_scale: float):
        super().__init__(coco_gt, coco_dt, iouType="keypoints")
        self.geodesics, self.kappa, self.gpsm, self.dp_scale = geodesics, kappa, gpsm, dp_scale

    def computeOks(self, img_id, cat_id):
        gts = self._gts[img_id, cat_id]
        dts = sorted(self._dts[img_id, cat_id], key=lambda d: -d["score"])[: self.params.maxDets[-1]]
        if not gts or not dts:
            return []
        scores = np.array([[0.0 if g["ignore"] else gps_score(d, g, self.geodesics, self.kappa, self.dp_scale)
                            for g in gts] for d in dts])
        if self.gpsm:
            scores = np.sqrt(scores * self._mask_iou(img_id, dts, gts))
        return scores

    def _mask_iou(self, img_id, dts, gts) -> np.ndarray:
        img = self.cocoGt.imgs[img_id]
        height, width = img["height"], img["width"]
        dt_rles = [_paste((_box_maps(d)[0] > 0).astype(np.uint8), d["bbox"], height, width) for d in dts]
        gt_rles = [self._gt_mask(g, height, width) for g in gts]
        return mask_utils.iou(dt_rles, gt_rles, [int(g["iscrowd"]) for g in gts])

    def _gt_mask(self, ann, height, width):
        if ann.get("dp_masks"):
            from scipy.ndimage import zoom

            parts = [mask_utils.decode(rle) for rle in ann["dp_masks"][:14] if rle]
            body = np.any(parts, axis=0).astype(float) if parts else np.zeros((256, 256))
            _, _, w, h = ann["bbox"]
            body = zoom(body, (max(h, 1) / body.shape[0], max(w, 1) / body.shape[1]), order=1, prefilter=False)
            return _paste((body > 0.5).astype(np.uint8), ann["bbox"], height, width)
        if ann.get("segmentation"):
            return self.cocoGt.annToRLE(ann)
        raise ValueError(f"GPSm needs dp_masks or segmentation for annotation of image {ann['image_id']}")

    def evaluateImg(self, img_id, cat_id, a_rng, max_det):
        """pycocotools' matching, then the two ignore rules of the official DensePose evaluator."""
        e = super().evaluateImg(img_id, cat_id, a_rng, max_det)
        if e is None:
            return None
        dtm, gtm, dt_ig, gt_ig = e["dtMatches"], e["gtMatches"], e["dtIgnore"], e["gtIgnore"].astype(bool)
        if gt_ig.all():  # no person to find on this image: its detections are not false positives
            dt_ig[:] = True
        gt_by_id = {g["id"]: g for g in self._gts[img_id, cat_id]}
        dt_by_id = {d["id"]: d for d in self._dts[img_id, cat_id]}
        gts, dts = [gt_by_id[i] for i in e["gtIds"]], [dt_by_id[i] for i in e["dtIds"]]
        if not gts or not dts:
            return e
        crowd = [int(g["iscrowd"]) for g in gts]
        box_iou = mask_utils.iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], crowd)
        for di, d in enumerate(dts):  # as the official code: at the strictest threshold only
            if dtm[-1, di]:
                continue
            best, m = 0.8, -1
            for gi, g in enumerate(gts):
                if (gtm[-1, gi] and not crowd[gi]) or box_iou[di, gi] < best:
                    continue
                best, m = box_iou[di, gi], gi
            if m >= 0:
                dt_ig[:, di] = gt_ig[m]
                if gt_ig[m]:
                    dtm[-1, di], gtm[-1, m] = gts[m]["id"], d["id"]
        # pycocotools' last step, redone after the change above: unmatched detections outside
        # the area range are ignored.
        outside = np.array([not a_rng[0] <= d["area"] <= a_rng[1] for d in dts])
        dt_ig |= (dtm == 0) & outside
        return e


def densepose_ap(gt: dict, detections: list[dict], geodesics: GeodesicModel, *,
                 kappa: float | np.ndarray = SMPL_PART_KAPPA, gpsm: bool = False,
                 dp_scale: float = 255.0) -> dict[str, float]:
    """DensePose AP {"AP", "AP50", "AP75", "APm", "APl"} in [0, 1] (-1: no person in that range).

    gt, detections: formats in the module doc. gpsm: score matches by sqrt(GPS * mask IoU).
    kappa, dp_scale: as in gps_score.
    """
    # pycocotools' keypoint mode ignores persons with num_keypoints == 0; DensePose ignores
    # persons without dp_x.
    gt = dict(gt, annotations=[{**a, "num_keypoints": int("dp_x" in a)} for a in gt["annotations"]])
    coco_gt = load_coco(gt)
    ev = _DensePoseEval(coco_gt, load_detections(coco_gt, detections), geodesics, kappa, gpsm, dp_scale)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(v) for k, v in zip(("AP", "AP50", "AP75", "APm", "APl"), ev.stats)}
