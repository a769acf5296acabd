"""DensePose body-part vocabulary: the 24 fine charts (I), the 14 coarse parts of `dp_masks`,
the fine->coarse map, horizontal-flip maps and drawing colours.

Sources (checked against the files, not restated from memory):
- Coarse order and the fine index groups: facebookresearch/DensePose
  `challenge/2018_COCO_DensePose/data_format.md` and detectron2
  `projects/DensePose/doc/DENSEPOSE_DATASETS.md`: `dp_masks` = 14 RLEs of 256x256 in the order
  Torso, Right Hand, Left Hand, Left Foot, Right Foot, Upper Leg Right, Upper Leg Left,
  Lower Leg Right, Lower Leg Left, Upper Arm Left, Upper Arm Right, Lower Arm Left,
  Lower Arm Right, Head; `dp_I`: 1,2 = Torso, 3 = Right Hand, 4 = Left Hand, 5 = Left Foot,
  6 = Right Foot, 7,9 = Upper Leg Right, 8,10 = Upper Leg Left, 11,13 = Lower Leg Right,
  12,14 = Lower Leg Left, 15,17 = Upper Arm Left, 16,18 = Upper Arm Right,
  19,21 = Lower Arm Left, 20,22 = Lower Arm Right, 23,24 = Head.
- Fine->coarse: detectron2 `densepose/data/samplers/densepose_base.py`
  (FINE_TO_COARSE_SEGMENTATION).
- Flip maps: detectron2 `densepose/structures/transform_data.py` (MASK_LABEL_SYMMETRIES,
  POINT_LABEL_SYMMETRIES) and the same lists in the original Detectron
  `detectron/utils/densepose_methods.py`. Torso 1 and 2 map to themselves (back/front), the
  head charts 23 <-> 24 swap, so they are the right/left halves of the head.
- Which chart of a pair is front or back is not written in the official docs. Torso 1 = back /
  2 = front, legs 7,8,11,12 = back / 9,10,13,14 = front and head 23 = right / 24 = left were
  checked on the SMPL IUV rendering `DensePoseData/demo_data/synth_UV_example.png` and the real
  annotation `demo_dp_single_ann.pkl` of the DensePose repository (frontal views). The arm
  front/back names (15,16,19,20 front; 17,18,21,22 back) follow the labelling users derived
  from the SMPL charts (e.g. facebookresearch/DensePose issue #64, detectron2 issue #3745).

U, V under a horizontal flip: in the real (SMPL) charts U and V are remapped by per-part lookup
tables, `UV_symmetry_transforms.mat` from DensePose's `densepose_uv_data.tar.gz`
(`U_transforms[i][v*255, u*255]`, `V_transforms[...]`). `flip_iuv` takes those tables when
given. The synthetic charts of `edgecap.data.synthetic_densepose` are built so that a mirror
image maps I -> FINE_FLIP[I], U -> U, V -> 1 - V on every part, which `flip_iuv` applies
without tables.
"""

from __future__ import annotations

import numpy as np

from edgecap import EdgecapError

# Index i - 1 holds the name of dp_I == i.
PART_NAMES = (
    "Torso Back", "Torso Front", "Right Hand", "Left Hand", "Left Foot", "Right Foot",
    "Upper Leg Right Back", "Upper Leg Left Back", "Upper Leg Right Front", "Upper Leg Left Front",
    "Lower Leg Right Back", "Lower Leg Left Back", "Lower Leg Right Front", "Lower Leg Left Front",
    "Upper Arm Left Front", "Upper Arm Right Front", "Upper Arm Left Back", "Upper Arm Right Back",
    "Lower Arm Left Front", "Lower Arm Right Front", "Lower Arm Left Back", "Lower Arm Right Back",
    "Head Right", "Head Left",
)
NUM_PARTS = 24

# dp_masks[k] is coarse label k + 1.
COARSE_NAMES = (
    "Torso", "Right Hand", "Left Hand", "Left Foot", "Right Foot", "Upper Leg Right",
    "Upper Leg Left", "Lower Leg Right", "Lower Leg Left", "Upper Arm Left", "Upper Arm Right",
    "Lower Arm Left", "Lower Arm Right", "Head",
)
NUM_COARSE = 14
DP_MASK_SIZE = 256  # dp_masks and dp_x/dp_y live in a 256 x 256 frame stretched over the box

# Index = fine label (0 = background), value = coarse label.
FINE_TO_COARSE = np.array(
    [0, 1, 1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12, 13, 14, 14], dtype=np.uint8
)
# Coarse label -> the fine labels it contains.
COARSE_TO_FINE = {c: tuple(int(i) for i in np.nonzero(FINE_TO_COARSE == c)[0]) for c in range(1, NUM_COARSE + 1)}

# Horizontal flip: label -> label of the mirrored body (index 0 = background).
FINE_FLIP = np.array(
    [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23], dtype=np.uint8
)
COARSE_FLIP = np.array([0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14], dtype=np.uint8)

# Drawing colours, RGB uint8, index = label (0 = background, black). Left/right pairs get
# neighbouring hues so a swapped side shows as a colour shift, front/back differ in brightness.
COARSE_COLORS = np.array([
    (0, 0, 0), (31, 119, 180), (214, 39, 40), (255, 127, 14), (44, 160, 44), (152, 223, 138),
    (148, 103, 189), (197, 176, 213), (140, 86, 75), (196, 156, 148), (227, 119, 194),
    (247, 182, 210), (188, 189, 34), (219, 219, 141), (23, 190, 207),
], dtype=np.uint8)
_BACK_DARKEN = 0.6
PART_COLORS = COARSE_COLORS[FINE_TO_COARSE].astype(np.float64)
PART_COLORS[[1, 7, 8, 11, 12, 17, 18, 21, 22]] *= _BACK_DARKEN  # back charts
PART_COLORS[23] *= 0.8  # head right vs left
PART_COLORS = PART_COLORS.round().astype(np.uint8)


def coarse_from_fine(part_index: np.ndarray) -> np.ndarray:
    """Map fine labels 0..24 (any shape) to coarse labels 0..14."""
    part_index = np.asarray(part_index)
    if part_index.size and (part_index.min() < 0 or part_index.max() > NUM_PARTS):
        raise EdgecapError(f"fine part labels must be in 0..{NUM_PARTS}, got {part_index.min()}..{part_index.max()}")
    return FINE_TO_COARSE[part_index.astype(np.int64)]


def colorize_parts(part_index: np.ndarray, coarse: bool = False) -> np.ndarray:
    """(..., ) labels -> (..., 3) uint8 RGB with PART_COLORS (or COARSE_COLORS)."""
    table = COARSE_COLORS if coarse else PART_COLORS
    return table[np.asarray(part_index).astype(np.int64)]


def flip_iuv(
    part_index: np.ndarray, u: np.ndarray, v: np.ndarray, uv_tables: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and chart coordinates of the mirror image (x -> width - x is the caller's job).

    Without `uv_tables`: the synthetic-chart rule I -> FINE_FLIP[I], U -> U, V -> 1 - V.
    With `uv_tables` = {"U_transforms": (24, 256, 256), "V_transforms": (24, 256, 256)} (the
    arrays of DensePose's UV_symmetry_transforms.mat, see `load_uv_symmetry`): the official
    lookup at [part - 1, int(v * 255), int(u * 255)]. Background (0) entries pass through.
    """
    part = np.asarray(part_index).astype(np.int64)
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if not (part.shape == u.shape == v.shape):
        raise EdgecapError(f"flip_iuv: I, U, V shapes differ: {part.shape}, {u.shape}, {v.shape}")
    fg = part > 0
    if uv_tables is None:
        u_new, v_new = u.copy(), np.where(fg, 1.0 - v, v)
    else:
        ut, vt = np.asarray(uv_tables["U_transforms"]), np.asarray(uv_tables["V_transforms"])
        if ut.shape != (NUM_PARTS, 256, 256) or vt.shape != ut.shape:
            raise EdgecapError(f"uv_tables must hold (24, 256, 256) arrays, got {ut.shape} and {vt.shape}")
        ui = (np.clip(u, 0, 1) * 255).astype(np.int64)
        vi = (np.clip(v, 0, 1) * 255).astype(np.int64)
        p = np.maximum(part - 1, 0)
        u_new = np.where(fg, ut[p, vi, ui], u)
        v_new = np.where(fg, vt[p, vi, ui], v)
    return FINE_FLIP[part], u_new, v_new


def load_uv_symmetry(path: str) -> dict:
    """Read DensePose's UV_symmetry_transforms.mat into {"U_transforms", "V_transforms"} arrays
    of shape (24, 256, 256). Needs scipy."""
    try:
        from scipy.io import loadmat
    except ImportError as e:  # pragma: no cover - scipy ships with the dev environment
        raise EdgecapError("load_uv_symmetry needs scipy (pip install scipy)") from e
    try:
        mat = loadmat(path)
    except (OSError, ValueError) as e:
        raise EdgecapError(f"cannot read UV symmetry file {path}: {e}") from e
    out = {}
    for key in ("U_transforms", "V_transforms"):
        if key not in mat:
            raise EdgecapError(f"UV symmetry file {path}: missing {key!r}")
        out[key] = np.stack([np.asarray(mat[key][0, i], dtype=np.float32) for i in range(mat[key].shape[1])])
    return out
