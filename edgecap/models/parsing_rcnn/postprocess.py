"""DensePose post-processing shared by every runtime format: plain numpy (matplotlib only to draw).

The Parsing R-CNN family's inference outputs (see `edgecap.models.parsing_rcnn.model`) are named
arrays: boxes (D, 4) xyxy image pixels, scores (D,), part_logits (D, 25, S, S), u, v (D, 24, S, S),
coarse_logits (D, K, S, S) (K = 15 here: background + 14 coarse parts; 2 in detectron2's
DensePose R-CNN); each S x S map is stretched over its box; empty slots have score 0.

`decode_detections` -> one `Detection` per kept box, maps still in the S x S box frame:
- I = argmax of part_logits, set to 0 (background) where the argmax of coarse_logits is
  channel 0. This is detectron2 DensePose's fine/coarse fusion
  (`densepose/converters/chart_output_to_chart_result.py`, `resample_fine_and_coarse_segm_to_bbox`:
  labels = argmax(fine) * (argmax(coarse) > 0)); detectron2 applies it after bilinearly
  resampling the logits to the box size, here it is applied on the S x S grid and the labels are
  then resampled by nearest neighbour (`paste_iuv`), so labels can differ along part edges by up
  to half a map cell.
- U, V = the u, v channel of the predicted part (channel I - 1: our u, v have no background
  channel, detectron2's have one at index 0), clipped to [0, 1] (the head regresses them raw);
  0 on background.
- kept: finite box and score, score > 0 (padded slots never pass) and score >= score_threshold;
  ordered by score, highest first (ties keep the model's order).

`paste_iuv` -> the image-sized IUV image in DensePose's convention (the `*_IUV.png` of the
original Detectron `infer_simple.py`, detectron2's `labels_uv_uint8`): uint8 (H, W, 3), channel
0 = I (0..24, 0 = background), channel 1 = round(U * 255), channel 2 = round(V * 255) (rounded,
where DensePose truncates: at most 0.5/255 apart), in array order (save it with cv2.imwrite to
get DensePose's file layout, where OpenCV stores channel 0 as blue).
- Geometry: pixel (r, c) has its centre at (c + 0.5, r + 0.5); it belongs to box (x0, y0, x1, y1)
  when x0 <= c + 0.5 < x1 and y0 <= r + 0.5 < y1, and reads map cell
  j = floor((c + 0.5 - x0) * S / w), i = floor((r + 0.5 - y0) * S / h) (cell (i, j) covers box
  offsets [j w/S, (j + 1) w/S) x [i h/S, (i + 1) h/S)). For integer boxes this is detectron2's
  placement (map resized to (int(h), int(w)) at (int(y), int(x))). Boxes partly outside the image
  are cut (their visible part keeps its place in the map); boxes that are non-finite, have
  width or height <= 0, or cover no pixel centre paste nothing.
- I: nearest neighbour (interpolating labels is meaningless).
- U, V: `uv_interpolation="bilinear"` (default): bilinear over the 4 neighbouring cells, using
  only the cells whose label equals the pixel's (nearest) label, weights renormalised, so charts
  of neighbouring parts never mix (the nearest cell is always among them, weight >= 1/4).
  `"nearest"`: the nearest cell's value, blocky but exact to the S x S map.
- Several people: a pixel takes the label of the highest-scoring detection that has a body label
  (I > 0) there; a box's background pixels hide nobody. Ties go to the earlier detection.
  Pixels outside every body are 0 0 0.
- Also returns one full-size IUV image per detection (input order), each that detection alone,
  before the overlap resolution (H * W * 3 bytes each).

`draw_iuv_contours` -> the picture of DensePose's figures (the "Making DensePose Fast and Light"
Figure 11, DensePose's notebook `plt.contour(IUV[:, :, 1] / 256., 10)` and the same for V):
isocontours of U and V over the image, here with U in one colormap (autumn: red -> yellow) and V
in another (winter: blue -> green), `levels` = 10 bands -> isolines at 0.1, 0.2, ..., 0.9. Lines
are traced per body part (U, V of part p masked outside I == p, as detectron2's
`DensePoseResultsCustomContourVisualizer` does per part) so no false lines pile up where charts
meet, over the image dimmed by `dim`; the lines are composited only onto body pixels (I > 0), so
every other pixel is exactly the dimmed image. The PNG has the image's size; a title is
written into its top-left corner. Written atomically (temp file in the same directory, then
os.replace).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecap import EdgecapError
from edgecap.data.densepose_parts import NUM_PARTS

OUTPUT_NAMES = ("boxes", "scores", "part_logits", "u", "v", "coarse_logits")


@dataclass(frozen=True)
class Detection:
    """One person: box (4,) float64 xyxy image pixels, score, and its maps over the box frame:
    I (S, S) int64 part labels 0..24, U, V (S, S) float32 in [0, 1] (0 on background).
    index: its slot in the model outputs (-1 when built by hand)."""

    box: np.ndarray
    score: float
    I: np.ndarray  # noqa: E741 - DensePose's name
    U: np.ndarray
    V: np.ndarray
    index: int = -1


# ---------------------------------------------------------------------------------------------
def _output_arrays(outputs: dict) -> dict[str, np.ndarray]:
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise EdgecapError(f"decode_detections: outputs lack {missing}; got {sorted(outputs)}")
    arrays = {n: np.asarray(outputs[n]) for n in OUTPUT_NAMES}
    if arrays["boxes"].ndim == 3 and arrays["boxes"].shape[0] == 1:  # a runtime kept a batch axis of 1
        arrays = {n: a[0] if a.ndim >= 2 and a.shape[0] == 1 else a for n, a in arrays.items()}
    boxes, scores, part, u, v, coarse = (arrays[n] for n in OUTPUT_NAMES)
    d = boxes.shape[0] if boxes.ndim == 2 else -1
    s = part.shape[-1] if part.ndim == 4 else -1
    ok = (boxes.shape == (d, 4) and scores.shape == (d,) and part.shape == (d, NUM_PARTS + 1, s, s)
          and u.shape == (d, NUM_PARTS, s, s) and v.shape == u.shape and coarse.ndim == 4
          and coarse.shape[0] == d and coarse.shape[1] >= 2 and coarse.shape[2:] == (s, s))
    if not ok:
        shapes = {n: tuple(a.shape) for n, a in arrays.items()}
        raise EdgecapError(f"decode_detections: expected boxes (D, 4), scores (D,), part_logits (D, {NUM_PARTS + 1}, "
                           f"S, S), u and v (D, {NUM_PARTS}, S, S), coarse_logits (D, K>=2, S, S); got {shapes}")
    return arrays


def decode_detections(outputs: dict[str, np.ndarray], score_threshold: float = 0.5) -> list[Detection]:
    """Named model outputs (module doc) -> the detections scoring >= score_threshold (and > 0),
    highest score first, with I, U, V decoded on the S x S box grid."""
    a = _output_arrays(outputs)
    boxes = a["boxes"].astype(np.float64)
    scores = a["scores"].astype(np.float64)
    valid = np.isfinite(scores) & np.isfinite(boxes).all(axis=1) & (scores > 0) & (scores >= score_threshold)
    keep = np.nonzero(valid)[0]
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    out = []
    for k in keep:
        labels = np.argmax(a["part_logits"][k], axis=0).astype(np.int64)
        labels[np.argmax(a["coarse_logits"][k], axis=0) == 0] = 0
        channel = np.clip(labels - 1, 0, NUM_PARTS - 1)[None]
        fg = labels > 0
        uv = []
        for name in ("u", "v"):
            x = np.take_along_axis(a[name][k], channel, axis=0)[0].astype(np.float32)
            x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0)
            uv.append(np.where(fg, x, np.float32(0)))
        out.append(Detection(box=boxes[k].copy(), score=float(scores[k]), I=labels, U=uv[0], V=uv[1], index=int(k)))
    return out


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None] - inter, 1e-9)


def detection_parity(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray],
                     score_threshold: float = 0.05, min_iou: float = 0.5) -> dict:
    """Tensor parity of two sets of outputs of the same image, on matched detections.

    Raw output slots are not comparable one to one: near-tied scores may legitimately reorder
    the D slots or swap the last kept box. Each reference detection (score >= threshold,
    highest first) is matched greedily to the unmatched artifact detection of highest IoU
    (>= min_iou). Reported: reference / artifact / matched counts, the worst box corner
    difference (px), the worst score difference, and over the matched maps the worst
    |logit| difference (part and coarse), the fraction of cells with the same decoded label I,
    and the worst |U|, |V| difference on cells where both have the same body part.
    """
    ref = decode_detections(reference, score_threshold)
    art = decode_detections(outputs, score_threshold)
    a_ref, a_art = _output_arrays(reference), _output_arrays(outputs)
    out = {"reference": len(ref), "artifact": len(art), "matched": 0, "box_max_abs_px": 0.0,
           "score_max_abs": 0.0, "logit_max_abs": 0.0, "label_agreement": 1.0, "uv_max_abs": 0.0}
    if not ref or not art:
        out["label_agreement"] = 1.0 if not ref and not art else 0.0
        return out
    iou = _iou_matrix(np.stack([d.box for d in ref]), np.stack([d.box for d in art]))
    taken, same, cells = set(), 0, 0
    for i, r in enumerate(ref):
        order = [j for j in np.argsort(-iou[i], kind="stable") if j not in taken and iou[i, j] >= min_iou]
        if not order:
            continue
        j = order[0]
        taken.add(j)
        a = art[j]
        out["matched"] += 1
        out["box_max_abs_px"] = max(out["box_max_abs_px"], float(np.abs(a.box - r.box).max()))
        out["score_max_abs"] = max(out["score_max_abs"], abs(a.score - r.score))
        for name in ("part_logits", "coarse_logits"):
            diff = np.abs(a_art[name][a.index].astype(np.float64) - a_ref[name][r.index])
            out["logit_max_abs"] = max(out["logit_max_abs"], float(diff.max()))
        same += int((a.I == r.I).sum())
        cells += r.I.size
        both = (a.I == r.I) & (r.I > 0)
        if both.any():
            out["uv_max_abs"] = max(out["uv_max_abs"], float(np.abs(a.U - r.U)[both].max()),
                                    float(np.abs(a.V - r.V)[both].max()))
    out["label_agreement"] = same / cells if cells else 0.0
    return out


# ---------------------------------------------------------------------------------------------
def _pixel_span(lo: float, hi: float, size: int, cells: int) -> tuple[int, int, np.ndarray] | None:
    """Pixels [p0, p1) of one axis whose centres lie in [lo, hi), clipped to the image, and
    their continuous map coordinates (cell centres at integers)."""
    p0 = max(int(np.ceil(lo - 0.5)), 0)
    p1 = min(int(np.ceil(hi - 0.5)), size)
    if p1 <= p0:
        return None
    coord = (np.arange(p0, p1) + 0.5 - lo) * (cells / (hi - lo)) - 0.5
    return p0, p1, coord


def _check_maps(det: Detection, k: int) -> int:
    labels = np.asarray(det.I)
    s = labels.shape[0] if labels.ndim == 2 else -1
    if labels.shape != (s, s) or np.shape(det.U) != (s, s) or np.shape(det.V) != (s, s) or s < 1:
        raise EdgecapError(f"paste_iuv: detection {k}: I, U, V must be the same (S, S) square maps, "
                           f"got {labels.shape}, {np.shape(det.U)}, {np.shape(det.V)}")
    if labels.size and (labels.min() < 0 or labels.max() > NUM_PARTS):
        raise EdgecapError(f"paste_iuv: detection {k}: I must be in 0..{NUM_PARTS}, "
                           f"got {labels.min()}..{labels.max()}")
    if np.shape(det.box) != (4,):
        raise EdgecapError(f"paste_iuv: detection {k}: box must be (4,) xyxy, got shape {np.shape(det.box)}")
    return s


def _paste_one(det: Detection, s: int, h: int, w: int, uv_interpolation: str) -> np.ndarray:
    out = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = (float(c) for c in det.box)
    if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
        return out
    cols, rows = _pixel_span(x0, x1, w, s), _pixel_span(y0, y1, h, s)
    if cols is None or rows is None:
        return out
    c0, c1, sx = cols
    r0, r1, sy = rows
    labels = np.asarray(det.I).astype(np.int64)
    u_map = np.clip(np.nan_to_num(np.asarray(det.U, np.float64)), 0.0, 1.0)
    v_map = np.clip(np.nan_to_num(np.asarray(det.V, np.float64)), 0.0, 1.0)
    near_y = np.clip(np.floor(sy + 0.5).astype(np.int64), 0, s - 1)
    near_x = np.clip(np.floor(sx + 0.5).astype(np.int64), 0, s - 1)
    lab = labels[np.ix_(near_y, near_x)]
    if uv_interpolation == "nearest":
        u, v = u_map[np.ix_(near_y, near_x)], v_map[np.ix_(near_y, near_x)]
    else:
        fy0, fx0 = np.floor(sy), np.floor(sx)
        wy, wx = sy - fy0, sx - fx0
        ys = [np.clip(fy0.astype(np.int64) + d, 0, s - 1) for d in (0, 1)]
        xs = [np.clip(fx0.astype(np.int64) + d, 0, s - 1) for d in (0, 1)]
        wys, wxs = (1.0 - wy, wy), (1.0 - wx, wx)
        acc_u, acc_v, acc_w = np.zeros(lab.shape), np.zeros(lab.shape), np.zeros(lab.shape)
        for iy in (0, 1):
            for ix in (0, 1):
                idx = np.ix_(ys[iy], xs[ix])
                weight = np.outer(wys[iy], wxs[ix]) * (labels[idx] == lab)
                acc_u += weight * u_map[idx]
                acc_v += weight * v_map[idx]
                acc_w += weight
        acc_w = np.maximum(acc_w, 1e-12)  # the nearest cell always counts (weight >= 1/4)
        u, v = acc_u / acc_w, acc_v / acc_w
    fg = lab > 0
    out[r0:r1, c0:c1, 0] = lab
    out[r0:r1, c0:c1, 1] = np.where(fg, np.round(u * 255.0), 0)
    out[r0:r1, c0:c1, 2] = np.where(fg, np.round(v * 255.0), 0)
    return out


def paste_iuv(detections: list[Detection], image_hw: tuple[int, int],
              uv_interpolation: str = "bilinear") -> tuple[np.ndarray, list[np.ndarray]]:
    """Detections -> (iuv (H, W, 3) uint8 of all people, [iuv (H, W, 3) uint8 per detection]).

    Conventions (geometry, interpolation, overlaps) in the module doc."""
    if uv_interpolation not in ("bilinear", "nearest"):
        raise EdgecapError(f"paste_iuv: uv_interpolation must be 'bilinear' or 'nearest', got {uv_interpolation!r}")
    if len(tuple(image_hw)) != 2 or min(int(x) for x in image_hw) < 1:
        raise EdgecapError(f"paste_iuv: image_hw must be (H, W) with both >= 1, got {image_hw}")
    h, w = (int(x) for x in image_hw)
    sizes = [_check_maps(d, k) for k, d in enumerate(detections)]
    people = [_paste_one(d, s, h, w, uv_interpolation) for d, s in zip(detections, sizes)]
    iuv = np.zeros((h, w, 3), np.uint8)
    # Paint lowest score first so the highest score ends on top; ties: the earlier one on top.
    order = sorted(range(len(detections)), key=lambda k: (float(detections[k].score), -k))
    for k in order:
        body = people[k][:, :, 0] > 0
        iuv[body] = people[k][body]
    return iuv, people


# ---------------------------------------------------------------------------------------------
def _check_image_pair(image: np.ndarray, iuv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image, iuv = np.asarray(image), np.asarray(iuv)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise EdgecapError(f"draw_iuv_contours: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if iuv.shape != image.shape:
        raise EdgecapError(f"draw_iuv_contours: iuv must be (H, W, 3) like the image {image.shape}, got {iuv.shape}")
    if iuv.size and (iuv[:, :, 0].min() < 0 or iuv[:, :, 0].max() > NUM_PARTS):
        raise EdgecapError(f"draw_iuv_contours: iuv channel 0 (I) must be in 0..{NUM_PARTS}")
    return image, iuv


def _rgba_canvas(h: int, w: int):
    """A transparent figure of exactly w x h pixels with one axes over it in pixel coordinates
    (pixel (r, c) centred at (c, r), y down)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.patch.set_alpha(0.0)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    ax.patch.set_alpha(0.0)
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    return fig, ax


def _render(fig, h: int, w: int) -> np.ndarray:
    """(h, w, 4) float RGBA in [0, 1], non-premultiplied (Agg's buffer)."""
    fig.canvas.draw()
    buf = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float64) / 255.0
    # A figure size of w / dpi inches can round to one pixel less: pad with transparency.
    out = np.zeros((h, w, 4))
    hh, ww = min(h, buf.shape[0]), min(w, buf.shape[1])
    out[:hh, :ww] = buf[:hh, :ww]
    return out


def _over(base: np.ndarray, rgba: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    alpha = rgba[:, :, 3:4]
    if where is not None:
        alpha = alpha * where[:, :, None]
    return base * (1.0 - alpha) + rgba[:, :, :3] * 255.0 * alpha


def dim_image(image: np.ndarray, dim: float) -> np.ndarray:
    """The background of `draw_iuv_contours`: round(image * dim) as uint8."""
    return np.round(np.asarray(image, np.float64) * dim).astype(np.uint8)


def draw_iuv_contours(image: np.ndarray, iuv: np.ndarray, path: str | Path, title: str | None = None, *,
                      levels: int = 10, dim: float = 0.5, linewidth: float = 1.0,
                      u_cmap: str = "autumn", v_cmap: str = "winter") -> Path:
    """Draw U and V isocontours (module doc) of `iuv` over the dimmed `image` (both (H, W, 3)
    uint8, RGB) into the PNG `path` of size H x W. Returns the path."""
    import matplotlib

    image, iuv = _check_image_pair(image, iuv)
    if int(levels) < 2:
        raise EdgecapError(f"draw_iuv_contours: levels must be >= 2, got {levels}")
    if not 0.0 <= float(dim) <= 1.0:
        raise EdgecapError(f"draw_iuv_contours: dim must be in [0, 1], got {dim}")
    h, w = image.shape[:2]
    labels = iuv[:, :, 0].astype(np.int64)
    body = labels > 0
    lines = np.linspace(0.0, 1.0, int(levels) + 1)[1:-1]
    cmaps = (matplotlib.colormaps[u_cmap], matplotlib.colormaps[v_cmap])

    fig, ax = _rgba_canvas(h, w)
    for part in np.unique(labels[body]):
        rows, cols = np.nonzero(labels == part)
        r0, r1 = max(rows.min() - 1, 0), min(rows.max() + 2, h)
        c0, c1 = max(cols.min() - 1, 0), min(cols.max() + 2, w)
        outside = labels[r0:r1, c0:c1] != part
        if min(r1 - r0, c1 - c0) < 2:
            continue  # a contour needs at least a 2 x 2 grid
        for channel, cmap in zip((1, 2), cmaps):
            z = np.ma.array(iuv[r0:r1, c0:c1, channel] / 255.0, mask=outside)
            inside = lines[(lines > z.min()) & (lines < z.max())] if z.count() >= 4 else lines[:0]
            if inside.size:
                ax.contour(np.arange(c0, c1), np.arange(r0, r1), z, levels=inside, cmap=cmap, vmin=0.0, vmax=1.0,
                           linewidths=linewidth)
    canvas = _over(dim_image(image, dim).astype(np.float64), _render(fig, h, w), body)

    if title:
        fig, ax = _rgba_canvas(h, w)
        size = float(np.clip(min(h, w) / 40.0, 6.0, 14.0))
        ax.text(0.01 * w, 0.01 * h, title, fontsize=size, color="white", va="top", ha="left",
                bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none", "pad": 2})
        canvas = _over(canvas, _render(fig, h, w))

    from PIL import Image  # pillow ships with matplotlib

    from edgecap.core.io import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8)).save(tmp, format="PNG")
    return path
