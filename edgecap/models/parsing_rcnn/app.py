"""Parsing R-CNN's task side: images in, DensePose out.

Data (synthetic or DensePose-COCO, read through the DensePose-COCO loader), the letterbox
pre-processing, DensePose/box AP evaluation, detection parity, the two-part runtime glue
(`PartsRunner`), the app's end-to-end path (image -> IUV image) and `predict` on an image
file. Every function takes a runner or predictor, so eager, simulated int8 and every artifact
go through the same code.

Input `image`: float32 (1, 3, S, S), the RGB image letterboxed to S = model.input_size (scaled so
its long side is S, padded right/bottom with zeros after normalisation) and normalised with
IMAGE_MEAN / IMAGE_STD. Pre-processing stays outside the graph so the app can do it with the
camera pipeline; the facts travel in every artifact's metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays
from edgecap.core.images import read_image
from edgecap.core.io import atomic_path
from edgecap.core.runner import Runner
from edgecap.data.densepose_coco import DensePoseCOCO
from edgecap.models.parsing_rcnn.config import ParsingRCNNConfig

IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, RGB in [0, 1]
IMAGE_STD = (0.229, 0.224, 0.225)
INPUT = "image"


@dataclass(frozen=True)
class DensePoseDataConfig:
    source: str = "synthetic"  # "synthetic" | "densepose_coco"
    seed: int = 0
    # synthetic: rendered once into cache_dir (default ~/.cache/edgecap/densepose), then read
    # back through the DensePose-COCO loader like real data.
    train_images: int = 2000
    val_images: int = 100
    max_people: int = 4
    # dp points per person (min, max). DensePose-COCO has about 100; the synthetic default draws
    # more so a short CPU run gets more part/UV supervision per image (the evaluator averages
    # GPS over whatever points the val set has).
    dp_points: tuple[int, int] = (200, 300)
    cache_dir: str = ""
    # densepose_coco: densepose_coco_2014_*.json and the COCO image folders
    train_json: str = ""
    train_image_dir: str = ""
    val_json: str = ""
    val_image_dir: str = ""
    # training
    max_dense_rois: int = 16  # positive RoIs per image sent to the DensePose head


@dataclass
class DensePoseSplit:
    dataset: DensePoseCOCO
    dp_scale: float  # dp_x/dp_y denominator of the annotations (synthetic: 256, DensePose-COCO: 255)
    input_size: int  # model input side the images are letterboxed to


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """uint8 (H, W, 3) -> normalised float32 (1, 3, size, size), and the scale applied."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale != 1.0:
        image = np.asarray(Image.fromarray(image).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
    x = (image.astype(np.float32) / 255.0 - IMAGE_MEAN) / IMAGE_STD
    out = np.zeros((1, 3, size, size), np.float32)
    out[0, :, : x.shape[0], : x.shape[1]] = x.transpose(2, 0, 1)
    return out, scale


class SlotsFull(UserWarning):
    """Every one of the model's D detection slots holds a person: some may be missing."""


def check_image(image: np.ndarray, where: str) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, or a clear error naming what was given."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise EdgecapError(f"{where}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def synthetic_split(cfg: DensePoseDataConfig, image_size: tuple[int, int], split: str) -> DensePoseSplit:
    from edgecap.data.synthetic_densepose import write_synthetic_densepose

    count = cfg.train_images if split == "train" else cfg.val_images
    seed = cfg.seed * 2 + (split == "val")  # splits never share images
    key = hashlib.sha1(json.dumps([seed, count, image_size, cfg.max_people, list(cfg.dp_points)]).encode()
                       ).hexdigest()[:12]
    root = Path(cfg.cache_dir or Path.home() / ".cache" / "edgecap" / "densepose") / f"{split}-{key}"
    if not (root / f"densepose_{split}.json").exists():
        tmp = root.with_name(f".tmp-{root.name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_synthetic_densepose(tmp, count, split, seed=seed, image_size=image_size, max_people=cfg.max_people,
                                  points=cfg.dp_points)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)  # a half-rendered set never looks complete
    return DensePoseSplit(DensePoseCOCO(root / f"densepose_{split}.json", root / split), 256.0, image_size[0])



def load_split(run, split: str) -> DensePoseSplit:
    cfg = run.data
    if split not in ("train", "val"):
        raise EdgecapError(f"unknown split {split!r}; expected 'train' or 'val'")
    if cfg.source == "synthetic":
        return synthetic_split(cfg, run.model.image_size, split)
    if cfg.source == "densepose_coco":
        json_path, image_dir = (cfg.train_json, cfg.train_image_dir) if split == "train" else (cfg.val_json, cfg.val_image_dir)
        if not json_path or not image_dir:
            raise EdgecapError(f"data.source=densepose_coco needs data.{split}_json and data.{split}_image_dir")
        return DensePoseSplit(DensePoseCOCO(json_path, image_dir), 255.0, run.model.input_size)
    raise EdgecapError(f"unknown data.source {cfg.source!r}; choose 'synthetic' or 'densepose_coco'")


def sample_batch(data: DensePoseSplit, rng: np.random.Generator, batch_size: int):
    idx = rng.integers(0, len(data.dataset), batch_size)
    images, pairs = [], []
    for i in idx:
        sample = data.dataset[int(i)]
        x, scale = letterbox(read_image(sample.image_path), data.input_size)
        images.append(x)
        pairs.append((sample, scale))
    return np.concatenate(images), pairs


def calibration_inputs(data: DensePoseSplit, count: int, seed: int = 0) -> list[Arrays]:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(data.dataset), size=min(count, len(data.dataset)), replace=False)
    return [{INPUT: letterbox(read_image(data.dataset[int(i)].image_path), data.input_size)[0]}
            for i in idx]


def evaluate(predict, data: DensePoseSplit, batch_size: int = 1, progress: str | None = None) -> dict:
    from edgecap.core.console import progress as progress_bar

    from edgecap.data.synthetic_geodesics import synthetic_geodesics
    from edgecap.metrics.box_ap import box_ap
    from edgecap.metrics.densepose import PAPER_KAPPA, densepose_ap
    from edgecap.models.parsing_rcnn.postprocess import decode_detections

    dets = []
    for i in progress_bar(range(len(data.dataset)), desc=progress, leave=False, disable=not progress):
        sample = data.dataset[i]
        x, scale = letterbox(read_image(sample.image_path), data.input_size)
        outputs = predict({INPUT: x})
        for d in decode_detections(outputs, score_threshold=0.05):
            x0, y0, x1, y1 = (float(c) / scale for c in d.box)
            dets.append({"image_id": sample.image_id, "category_id": 1, "score": float(d.score),
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "I": d.I, "U": d.U, "V": d.V})
    gt = data.dataset.coco.dataset
    # Synthetic bodies: geodesics on edgecap's canonical body surface (across part seams, as
    # the official SMPL tables), with DensePose's single kappa = 0.255 (the per-part kappas
    # are SMPL statistics). DensePose-COCO would use TableGeodesics and per-part kappas.
    if data.dp_scale != 256.0:
        raise EdgecapError("DensePose AP on DensePose-COCO needs the official geodesic tables "
                           "(TableGeodesics.from_files) and per-part kappas (SMPL_PART_KAPPA); "
                           "call edgecap.metrics.densepose.densepose_ap with them")
    geodesics, kappa = synthetic_geodesics(), PAPER_KAPPA
    boxes = box_ap(gt, [{k: v for k, v in d.items() if k not in "IUV"} for d in dets])
    dp = densepose_ap(gt, dets, geodesics, kappa=kappa, dp_scale=data.dp_scale)
    dpm = densepose_ap(gt, dets, geodesics, kappa=kappa, gpsm=True, dp_scale=data.dp_scale)
    out = {f"box_{k}": v for k, v in boxes.items()}
    out.update({f"dp_{k}": v for k, v in dp.items()})
    out.update({f"dp_gpsm_{k}": v for k, v in dpm.items()})
    out["images"] = len(data.dataset)
    out["detections"] = len(dets)
    return out


def part_inputs(parts: list, images: list[Arrays], boxes_per_image: int = 3) -> dict[str, list[Arrays]]:
    """Inputs of each part (edgecap.models.parsing_rcnn.split) for the given images: the images for
    the detector; for the dense head, the float detector's features with each of its top
    `boxes_per_image` boxes (a centred box when it found nothing, so an untrained model still exports)."""
    detector, dense = parts
    dense_in = dense.input_names
    out = {detector.name: list(images), dense.name: []}
    for x in images:
        with torch.no_grad():
            named = {n: t.numpy() for n, t in zip(detector.output_names, detector.module(torch.from_numpy(x[INPUT])))}
        feats = {n: named[n] for n in dense_in[:-1]}
        order = np.argsort(-named["scores"], kind="stable")[:boxes_per_image]
        kept = [k for k in order if named["scores"][k] > 0]
        if not kept:
            s = float(x[INPUT].shape[-1])
            out[dense.name].append({**feats, dense_in[-1]: np.array([[s / 4, s / 4, 3 * s / 4, 3 * s / 4]], np.float32)})
        for k in kept:
            out[dense.name].append({**feats, dense_in[-1]: named["boxes"][k : k + 1].astype(np.float32)})
    return out


class PartsRunner(Runner):
    """The two-part layout run as one model: the detector, then the dense graph once per slot whose
    score is above `min_score` (default 0: every real detection; the app passes its display
    threshold to skip low scores), assembled into the whole model's outputs. Slots the dense graph
    did not run for hold zero maps; decoding ignores them (score 0, or under the threshold).
    Works over part runners of any format, PyTorch included."""

    def __init__(self, detector: Runner, dense: Runner, spec: dict, min_score: float = 0.0):
        self.detector, self.dense = detector, dense
        self.format = spec["format"]
        self.min_score = float(min_score)
        det, dense_spec = spec["parts"]
        self.input_names, self.output_names = list(det["inputs"]), list(spec["outputs"])
        self.input_shapes = dict(detector.input_shapes)
        self.feature_names, self.box_input = list(dense_spec["inputs"][:-1]), dense_spec["inputs"][-1]
        self.dense_outputs = list(dense_spec["outputs"])
        self.dense_shapes = {n: tuple(s) for n, s in dense_spec["output_shapes"].items()}
        self.dense_runs = 0  # dense-graph calls of the last run()

    def run(self, inputs: Arrays) -> Arrays:
        det = self.detector.run(inputs)
        boxes, scores = np.asarray(det["boxes"]), np.asarray(det["scores"])
        d = scores.shape[0]
        out = {"boxes": boxes, "scores": scores}
        out.update({n: np.zeros((d, *self.dense_shapes[n][1:]), np.float32) for n in self.dense_outputs})
        features = {n: det[n] for n in self.feature_names}
        run_for = np.nonzero(np.isfinite(scores) & (scores > 0) & (scores >= self.min_score))[0]
        for k in run_for:
            maps = self.dense.run({**features, self.box_input: boxes[k : k + 1].astype(np.float32)})
            for n in self.dense_outputs:
                out[n][k] = maps[n][0]
        self.dense_runs = len(run_for)
        return {n: out[n] for n in self.output_names}

    def metadata(self) -> dict:
        return self.detector.metadata()


def output_parity(pairs, score_threshold: float = 0.05) -> dict:
    """Tensor parity over (artifact outputs, PyTorch outputs) pairs, on matched detections
    (`edgecap.models.parsing_rcnn.postprocess.detection_parity`) scoring at least `score_threshold`:
    summed counts, worst differences, cell-weighted label agreement."""
    from edgecap.models.parsing_rcnn.postprocess import detection_parity

    total: dict = {"samples": 0, "reference": 0, "artifact": 0, "matched": 0}
    worst = dict.fromkeys(("box_max_abs_px", "score_max_abs", "logit_max_abs", "uv_max_abs"), 0.0)
    agree = weight = 0.0
    for outputs, reference in pairs:
        p = detection_parity(outputs, reference, score_threshold)
        total["samples"] += 1
        for k in ("reference", "artifact", "matched"):
            total[k] += p[k]
        for k in worst:
            worst[k] = max(worst[k], p[k])
        agree += p["label_agreement"] * max(p["matched"], 1)
        weight += max(p["matched"], 1)
    return {**total, "recall": total["matched"] / max(total["reference"], 1), **worst,
            "label_agreement": agree / max(weight, 1.0)}


def end_to_end(runner, cfg: ParsingRCNNConfig, image: np.ndarray,
               score_threshold: float = 0.5) -> tuple[np.ndarray, list]:
    """The app's whole path for one RGB uint8 image: letterbox + normalise, run, decode the
    detections, paste I/U/V into the image frame. Returns (IUV image (H, W, 3) uint8,
    detections with boxes in image pixels)."""
    from edgecap.models.parsing_rcnn.postprocess import decode_detections, paste_iuv

    image = check_image(image, "end_to_end")
    if isinstance(runner, PartsRunner):  # no DensePose maps for boxes nobody shows
        runner.min_score = score_threshold
    x, scale = letterbox(image, cfg.input_size)
    dets = decode_detections(runner.run({INPUT: x}), score_threshold)
    dets = [dataclasses.replace(d, box=np.asarray(d.box) / scale) for d in dets]
    iuv, _ = paste_iuv(dets, image.shape[:2])
    if len(dets) >= cfg.max_detections:
        warnings.warn(f"all {cfg.max_detections} detection slots are used: the image may hold more people than "
                      f"the model's maximum; export with model.max_detections set higher to see them all",
                      SlotsFull, stacklevel=2)
    return iuv, dets


def predict_file(runner, cfg: ParsingRCNNConfig, input_path: Path, output_path: Path,
                 score_threshold: float = 0.5) -> str:
    """Image -> IUV image (DensePose convention: I, U*255, V*255) at `output_path` and the
    Figure-11 style U/V contour drawing beside it (`*_contours.png`)."""
    from PIL import Image

    from edgecap.models.parsing_rcnn.postprocess import draw_iuv_contours

    image = read_image(input_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SlotsFull)
        iuv, dets = end_to_end(runner, cfg, image, score_threshold)
    with atomic_path(Path(output_path), suffix=".png") as tmp:
        Image.fromarray(iuv).save(tmp, format="PNG")
    contours = Path(output_path).with_name(Path(output_path).stem + "_contours.png")
    people = f"{len(dets)} {'person' if len(dets) == 1 else 'people'}"
    draw_iuv_contours(image, iuv, contours, title=f"{cfg.name}: {people}")
    note = "".join(f"\nwarning: {w.message}" for w in caught if issubclass(w.category, SlotsFull))
    return (f"wrote {output_path} and {contours}: {people} (score >= {score_threshold}, "
            f"{runner.format}){note}")


def bench_scenes(run, out_dir: Path, people=(1, 3, 10), seed: int = 123) -> list[dict]:
    """Synthetic images with exactly 1, 3 and 10 people (some may be hidden by others) at the
    training image size, for the end-to-end latency; written once as PNG under out_dir."""
    from PIL import Image

    from edgecap.data.synthetic_densepose import render_scene, sample_scene

    scenes = []
    for n in people:
        path = Path(out_dir) / f"people_{n}.png"
        rendered = render_scene(sample_scene(np.random.default_rng([seed, n]), run.model.image_size,
                                             num_people=n))
        with atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(rendered.image).save(tmp, format="PNG")
        visible = len(set(np.unique(rendered.instance)) - {0})
        scenes.append({"label": f"{n} people", "file": str(path), "people_in_image": n, "people_visible": visible})
    return scenes


def end_to_end_step(runner: Runner, cfg: ParsingRCNNConfig, scene_file: str):
    """The bench's end-to-end step on one scene image: returns how many people it found."""
    image = read_image(Path(scene_file))
    return lambda: {"people_detected": len(end_to_end(runner, cfg, image)[1])}

