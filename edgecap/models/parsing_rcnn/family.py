"""The family contract (edgecap.models.base.ModelFamily) for Parsing R-CNN / DensePose R-CNN.

Input `image`: float32 (1, 3, S, S), the RGB image letterboxed to S = model.input_size (scaled so
its long side is S, padded right/bottom with zeros after normalisation) and normalised with
IMAGE_MEAN / IMAGE_STD. Pre-processing stays outside the graph so the app can do it with the
camera pipeline; the facts travel in every artifact's metadata.
Outputs: ParsingRCNN.output_names, boxes in input (letterboxed) pixels.
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
from torch import nn

from edgecap import EdgecapError, __version__
from edgecap.data.densepose_coco import DensePoseCOCO
from edgecap.data.densepose_parts import PART_NAMES
from edgecap.models.base import Arrays, Predictor, TensorSpec
from edgecap.models.parsing_rcnn.config import PRESETS, ParsingRCNNConfig
from edgecap.models.parsing_rcnn.model import ParsingRCNN, build_parsing_rcnn
from edgecap.models.parsing_rcnn.training import ParsingRCNNTrainer
from edgecap.train.config import TrainConfig

IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, RGB in [0, 1]
IMAGE_STD = (0.229, 0.224, 0.225)


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


@dataclass(frozen=True)
class ParsingRun:
    model: ParsingRCNNConfig = PRESETS["mobile_b"]
    data: DensePoseDataConfig = DensePoseDataConfig()
    train: TrainConfig = TrainConfig(steps=3000, batch_size=2, lr=1e-3, warmup_steps=200, eval_every=1000,
                                     checkpoint_every=250)


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


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise EdgecapError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise EdgecapError(f"image {path} is corrupt or not an image: {e}") from None


def _synthetic_split(cfg: DensePoseDataConfig, image_size: tuple[int, int], split: str) -> DensePoseSplit:
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


def run_name(model: ParsingRCNN) -> str:
    return f"Parsing R-CNN ({model.config.name})"


class ParsingRCNNFamily:
    name = "parsing_rcnn"
    exportable = True
    batchable = False  # one image per forward (the RPN and the static D slots are per image)
    default_calibration = 64  # images; PTQ calibrates on training images, validation stays unseen
    calibration_split = "train"
    qat_objective = "distill"  # see training.qat_finetune; "task" fine-tunes on the training losses
    default_qat_lr = 5e-6  # 2e-5 moved the float model (GPS 0.039 -> 0.036 on a 4500-step run; README)
    read_image = staticmethod(read_image)
    run_config = ParsingRun
    presets = PRESETS
    input_name = "image"

    def build(self, cfg: ParsingRCNNConfig) -> ParsingRCNN:
        return build_parsing_rcnn(cfg)

    def export_form(self, model: ParsingRCNN) -> ParsingRCNN:
        """An eval-mode copy with BatchNorm folded into the convs and the RPN head un-shared
        (one copy per level), as PT2E int8 needs (export-probe.md, items 5-6); same outputs."""
        import copy

        from edgecap.models.fold import fold_batchnorm, unfolded_batchnorms

        form = fold_batchnorm(copy.deepcopy(model).eval()).unshare()
        left = unfolded_batchnorms(form)
        if left:
            raise EdgecapError(f"export form of {run_name(model)}: BatchNorm not folded in {left}")
        return form

    def input_spec(self, cfg: ParsingRCNNConfig) -> dict[str, TensorSpec]:
        return {self.input_name: TensorSpec((1, 3, cfg.input_size, cfg.input_size))}

    def output_names(self, cfg: ParsingRCNNConfig) -> list[str]:
        return list(ParsingRCNN.output_names)

    def metadata(self, cfg: ParsingRCNNConfig) -> dict[str, str]:
        return {
            "edgecap_version": __version__, "model": self.name, "preset": cfg.name,
            "input_spec": f"image: float32[1,3,{cfg.input_size},{cfg.input_size}] RGB, letterboxed (long side "
                          f"{cfg.input_size}, pad right/bottom), (x/255 - mean) / std",
            "mean": json.dumps(IMAGE_MEAN), "std": json.dumps(IMAGE_STD),
            "output_spec": f"boxes[{cfg.max_detections},4] xyxy input px, scores[{cfg.max_detections}] (0 = empty), "
                           f"part_logits/u/v/coarse_logits [{cfg.max_detections},C,{cfg.dense_output_size},"
                           f"{cfg.dense_output_size}] over each box",
            "part_names": json.dumps(list(PART_NAMES)),
            "max_detections": str(cfg.max_detections),
        }

    def float_modules(self) -> list[str]:
        # Box decoding, NMS and RoI pooling break in int8 (export-probe.md). The part-logit deconv
        # (export form: `separate()`d predictor) holds most of the int8 DensePose loss on a longer-
        # trained checkpoint: fp32 there recovers GPSm 0.153 -> 0.162 of fp32's 0.162 in the eager
        # simulation, for 0.08 MB (benchmarks/parsing_rcnn_int8_sensitivity.py; README).
        return ["rpn.decoder", "rpn.nms", "box_decoder", "box_nms", "empty_slots", "box_pooler", "dense_pooler",
                "dense_predictor.deconvs.0"]

    def tolerances(self) -> dict[str, dict]:
        return {
            # GPSm AP too: it also judges the predicted body mask (sqrt(GPS * mask IoU)).
            "fp32": {"metrics": ["dp_AP", "dp_gpsm_AP", "box_AP"], "max_abs_delta": 0.001},
            # int8: the budget is a drop of at most 1 AP point; a gain passes.
            "int8": {"metrics": ["dp_AP", "dp_gpsm_AP", "box_AP"], "max_abs_delta": 0.01, "better": "higher"},
        }

    def load_split(self, run: ParsingRun, split: str) -> DensePoseSplit:
        cfg = run.data
        if split not in ("train", "val"):
            raise EdgecapError(f"unknown split {split!r}; expected 'train' or 'val'")
        if cfg.source == "synthetic":
            return _synthetic_split(cfg, run.model.image_size, split)
        if cfg.source == "densepose_coco":
            json_path, image_dir = (cfg.train_json, cfg.train_image_dir) if split == "train" else (cfg.val_json, cfg.val_image_dir)
            if not json_path or not image_dir:
                raise EdgecapError(f"data.source=densepose_coco needs data.{split}_json and data.{split}_image_dir")
            return DensePoseSplit(DensePoseCOCO(json_path, image_dir), 255.0, run.model.input_size)
        raise EdgecapError(f"unknown data.source {cfg.source!r}; choose 'synthetic' or 'densepose_coco'")

    def prepare_training(self, model: ParsingRCNN, train_data: DensePoseSplit) -> None:
        if len(train_data.dataset) == 0:
            raise EdgecapError(f"no training images in {train_data.dataset.json_path}")

    def training_module(self, model: ParsingRCNN, run: ParsingRun) -> nn.Module:
        return ParsingRCNNTrainer(model, run.data.max_dense_rois)

    def qat_finetune(self, model: ParsingRCNN, run: ParsingRun, train_data: DensePoseSplit, steps: int, lr: float,
                     seed: int = 0, progress: bool = True) -> ParsingRCNN:
        """`edgecap quantize --method qat`: see edgecap.models.parsing_rcnn.training.qat_finetune."""
        from edgecap.models.parsing_rcnn.training import qat_finetune

        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        return qat_finetune(model, lambda _step: self.sample_batch(train_data, rng, run.train.batch_size), steps, lr,
                            self.float_modules(), run.data.max_dense_rois, progress, self.qat_objective)

    def sample_batch(self, data: DensePoseSplit, rng: np.random.Generator, batch_size: int):
        idx = rng.integers(0, len(data.dataset), batch_size)
        images, pairs = [], []
        for i in idx:
            sample = data.dataset[int(i)]
            x, scale = letterbox(read_image(sample.image_path), data.input_size)
            images.append(x)
            pairs.append((sample, scale))
        return np.concatenate(images), pairs

    def training_loss(self, model: nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, pairs = batch
        return model(torch.from_numpy(images).to(device), pairs)

    def calibration_inputs(self, data: DensePoseSplit, count: int, seed: int = 0) -> list[Arrays]:
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(data.dataset), size=min(count, len(data.dataset)), replace=False)
        return [{self.input_name: letterbox(read_image(data.dataset[int(i)].image_path), data.input_size)[0]}
                for i in idx]

    def evaluate(self, predict: Predictor, data: DensePoseSplit, batch_size: int = 1, progress: str | None = None) -> dict:
        from tqdm import tqdm

        from edgecap.metrics.box_ap import box_ap
        from edgecap.data.synthetic_geodesics import synthetic_geodesics
        from edgecap.metrics.densepose import PAPER_KAPPA, densepose_ap
        from edgecap.runtime.densepose_post import decode_detections

        dets = []
        for i in tqdm(range(len(data.dataset)), desc=progress, leave=False, disable=not progress):
            sample = data.dataset[i]
            x, scale = letterbox(read_image(sample.image_path), data.input_size)
            outputs = predict({self.input_name: x})
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

    def split_model(self, model: ParsingRCNN) -> dict:
        """The two-graph form (edgecap.models.parsing_rcnn.split) of an export-form model."""
        from edgecap.models.parsing_rcnn.split import split_model

        return split_model(model)

    def split_inputs(self, parts: dict, images: list[Arrays], boxes_per_image: int = 3) -> dict[str, list[Arrays]]:
        """Inputs of each part for the given images: the images for the detector; for the dense
        head, the float detector's features with each of its top `boxes_per_image` boxes
        (a centred box when it found nothing, so an untrained model still exports)."""
        detector, _, det_out = parts["detector"]
        dense_in = parts["dense"][1]
        out = {"detector": list(images), "dense": []}
        for x in images:
            with torch.no_grad():
                named = {n: t.numpy() for n, t in zip(det_out, detector(torch.from_numpy(x[self.input_name])))}
            feats = {n: named[n] for n in dense_in[:-1]}
            order = np.argsort(-named["scores"], kind="stable")[:boxes_per_image]
            kept = [k for k in order if named["scores"][k] > 0]
            if not kept:
                s = float(x[self.input_name].shape[-1])
                out["dense"].append({**feats, dense_in[-1]: np.array([[s / 4, s / 4, 3 * s / 4, 3 * s / 4]], np.float32)})
            for k in kept:
                out["dense"].append({**feats, dense_in[-1]: named["boxes"][k : k + 1].astype(np.float32)})
        return out

    def output_parity(self, pairs, score_threshold: float = 0.05) -> dict:
        """Tensor parity over (artifact outputs, PyTorch outputs) pairs, on matched detections
        (`edgecap.runtime.densepose_post.detection_parity`) scoring at least `score_threshold`:
        summed counts, worst differences, cell-weighted label agreement."""
        from edgecap.runtime.densepose_post import detection_parity

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

    def baselines(self, run: ParsingRun, train_data: DensePoseSplit, val_data: DensePoseSplit) -> dict[str, dict]:
        """The untrained model (same seed, no training) on the same validation set."""
        from edgecap.runtime import TorchRunner

        torch.manual_seed(run.train.seed)
        untrained = self.build(run.model).eval()
        runner = TorchRunner(untrained, [self.input_name], self.output_names(run.model))
        return {"untrained": self.evaluate(runner.run, val_data)}

    def end_to_end(self, runner, cfg: ParsingRCNNConfig, image: np.ndarray,
                   score_threshold: float = 0.5) -> tuple[np.ndarray, list]:
        """The app's whole path for one RGB uint8 image: letterbox + normalise, run, decode the
        detections, paste I/U/V into the image frame. Returns (IUV image (H, W, 3) uint8,
        detections with boxes in image pixels)."""
        from edgecap.runtime.densepose_post import decode_detections, paste_iuv

        image = check_image(image, "end_to_end")
        if hasattr(runner, "min_score"):  # a split artifact: no DensePose maps for boxes nobody shows
            runner.min_score = score_threshold
        x, scale = letterbox(image, cfg.input_size)
        dets = decode_detections(runner.run({self.input_name: x}), score_threshold)
        dets = [dataclasses.replace(d, box=np.asarray(d.box) / scale) for d in dets]
        iuv, _ = paste_iuv(dets, image.shape[:2])
        if len(dets) >= cfg.max_detections:
            warnings.warn(f"all {cfg.max_detections} detection slots are used: the image may hold more people than "
                          f"the model's maximum; export with model.max_detections set higher to see them all",
                          SlotsFull, stacklevel=2)
        return iuv, dets

    def predict_file(self, runner, cfg: ParsingRCNNConfig, input_path: Path, output_path: Path,
                     score_threshold: float = 0.5) -> str:
        """Image -> IUV image (DensePose convention: I, U*255, V*255) at `output_path` and the
        Figure-11 style U/V contour drawing beside it (`*_contours.png`)."""
        from PIL import Image

        from edgecap.io import atomic_path
        from edgecap.runtime.densepose_post import draw_iuv_contours

        image = read_image(input_path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SlotsFull)
            iuv, dets = self.end_to_end(runner, cfg, image, score_threshold)
        with atomic_path(Path(output_path), suffix=".png") as tmp:
            Image.fromarray(iuv).save(tmp, format="PNG")
        contours = Path(output_path).with_name(Path(output_path).stem + "_contours.png")
        people = f"{len(dets)} {'person' if len(dets) == 1 else 'people'}"
        draw_iuv_contours(image, iuv, contours, title=f"{cfg.name}: {people}")
        note = "".join(f"\nwarning: {w.message}" for w in caught if issubclass(w.category, SlotsFull))
        return (f"wrote {output_path} and {contours}: {people} (score >= {score_threshold}, "
                f"{runner.format}){note}")

    # -- bench hooks (edgecap.runtime.bench) -----------------------------------------------------

    def bench_references(self, run: ParsingRun) -> list[dict]:
        """Eager fp32 models timed beside the artifacts at the same input size: the paper's
        DensePose R-CNN baseline and Parsing R-CNN (Table 4). Latency does not depend on the
        weights (static shapes, fixed D slots), so they are built untrained; they get the same
        export form (BN folded) as the trained model's own eager row."""
        refs = []
        for name in ("densepose_rcnn", "parsing_rcnn"):
            cfg = dataclasses.replace(PRESETS[name], input_size=run.model.input_size,
                                      max_detections=run.model.max_detections)
            refs.append({"name": f"{name}_eager_fp32", "preset": name, "model_config": dataclasses.asdict(cfg)})
        return refs

    def build_reference(self, spec: dict) -> ParsingRCNN:
        from edgecap.config import from_dict

        torch.manual_seed(0)
        return self.export_form(self.build(from_dict(ParsingRCNNConfig, spec["model_config"], "bench reference")))

    def bench_scenes(self, run: ParsingRun, out_dir: Path, people=(1, 3, 10), seed: int = 123) -> list[dict]:
        """Synthetic images with exactly 1, 3 and 10 people (some may be hidden by others) at the
        training image size, for the end-to-end latency; written once as PNG under out_dir."""
        from PIL import Image

        from edgecap.data.synthetic_densepose import render_scene, sample_scene
        from edgecap.io import atomic_path

        scenes = []
        for n in people:
            path = Path(out_dir) / f"people_{n}.png"
            rendered = render_scene(sample_scene(np.random.default_rng([seed, n]), run.model.image_size,
                                                 num_people=n))
            with atomic_path(path, suffix=".png") as tmp:
                Image.fromarray(rendered.image).save(tmp, format="PNG")
            visible = len(set(np.unique(rendered.instance)) - {0})
            scenes.append({"people": n, "visible": visible, "image": str(path)})
        return scenes

    def parameter_table(self) -> str:
        from edgecap.models.parsing_rcnn.params import format_table, parameter_table

        return format_table(parameter_table())

    def check_inputs(self, cfg: ParsingRCNNConfig, arrays: Arrays, where: str) -> None:
        from edgecap.runtime.checks import check_named_arrays

        check_named_arrays(arrays, {self.input_name: self.input_spec(cfg)[self.input_name].shape}, where)
