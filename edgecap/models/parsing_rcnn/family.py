"""The family contract (edgecap.models.contract) for Parsing R-CNN / DensePose R-CNN.

Outputs: ParsingRCNN.output_names, boxes in input (letterboxed) pixels. Layouts: "whole" (one
graph) and "parts" (a detector graph and a per-person DensePose head graph, run once per
detection: edgecap.models.parsing_rcnn.split, glued by app.PartsRunner).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecap import EdgecapError, __version__
from edgecap.core.arrays import Arrays, TensorSpec
from edgecap.core.config import TrainConfig
from edgecap.core.parts import Part
from edgecap.core.runner import Runner, TorchRunner, batched
from edgecap.data.densepose_parts import PART_NAMES
from edgecap.models.contract import WHOLE, FamilyFacts, ModelFamily
from edgecap.models.parsing_rcnn import app
from edgecap.models.parsing_rcnn.app import DensePoseDataConfig, DensePoseSplit
from edgecap.models.parsing_rcnn.config import PRESETS, ParsingRCNNConfig
from edgecap.models.parsing_rcnn.model import ParsingRCNN, build_parsing_rcnn

PARTS = "parts"  # the detector + per-person dense head layout
AP_METRICS = ["dp_AP", "dp_gpsm_AP", "box_AP"]  # GPSm AP too: it also judges the body mask (sqrt(GPS * mask IoU))


@dataclass(frozen=True)
class ParsingRun:
    model: ParsingRCNNConfig = PRESETS["mobile_b"]
    data: DensePoseDataConfig = DensePoseDataConfig()
    train: TrainConfig = TrainConfig(steps=3000, batch_size=2, lr=1e-3, warmup_steps=200, eval_every=1000,
                                     checkpoint_every=250)


def run_name(model: ParsingRCNN) -> str:
    return f"Parsing R-CNN ({model.config.name})"


class ParsingRCNNFamily(ModelFamily):
    facts = FamilyFacts(
        name="parsing_rcnn",
        run_config=ParsingRun,
        metrics=tuple(AP_METRICS),
        better="higher",
        tolerances={
            "fp32": {"metrics": AP_METRICS, "max_abs_delta": 0.001},
            # int8: a drop of at most 1 AP point; a gain passes.
            "int8": {"metrics": AP_METRICS, "max_abs_delta": 0.01, "better": "higher"},
        },
        presets=PRESETS,
        layouts=(WHOLE, PARTS),
        calibration_count=64,  # images; PTQ calibrates on training images, validation stays unseen
        calibration_split="train",
        batchable=False,  # one image per forward (the RPN and the static D slots are per image)
        qat_lr=5e-6,  # 2e-5 moved the float model (GPS 0.039 -> 0.036 on a 4500-step run; docs/parsing_rcnn_int8.md)
        qat_objective="distill",  # see train.qat_finetune; "task" fine-tunes on the training losses
        quick_overrides=("data.train_images=6", "data.val_images=3", "data.max_people=2", "train.batch_size=1",
                         "train.eval_every=100", "train.checkpoint_every=100", "train.warmup_steps=1",
                         "train.steps=2"),
    )

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
        return {app.INPUT: TensorSpec((1, 3, cfg.input_size, cfg.input_size))}

    def output_names(self, cfg: ParsingRCNNConfig) -> list[str]:
        return list(ParsingRCNN.output_names)

    def metadata(self, cfg: ParsingRCNNConfig) -> dict[str, str]:
        return {
            "edgecap_version": __version__, "model": self.name, "preset": cfg.name,
            "input_spec": f"image: float32[1,3,{cfg.input_size},{cfg.input_size}] RGB, letterboxed (long side "
                          f"{cfg.input_size}, pad right/bottom), (x/255 - mean) / std",
            "mean": json.dumps(app.IMAGE_MEAN), "std": json.dumps(app.IMAGE_STD),
            "output_spec": f"boxes[{cfg.max_detections},4] xyxy input px, scores[{cfg.max_detections}] (0 = empty), "
                           f"part_logits/u/v/coarse_logits [{cfg.max_detections},C,{cfg.dense_output_size},"
                           f"{cfg.dense_output_size}] over each box",
            "part_names": json.dumps(list(PART_NAMES)),
            "max_detections": str(cfg.max_detections),
        }

    def float_modules(self, cfg: ParsingRCNNConfig) -> list[str]:
        # Box decoding, NMS and RoI pooling break in int8 (export-probe.md). The part-logit deconv
        # (export form: `separate()`d predictor) holds most of the int8 DensePose loss on a longer-
        # trained checkpoint: fp32 there recovers GPSm 0.153 -> 0.162 of fp32's 0.162 in the eager
        # simulation, for 0.08 MB (benchmarks/parsing_rcnn_int8_sensitivity.py; docs/parsing_rcnn_int8.md).
        return ["rpn.decoder", "rpn.nms", "box_decoder", "box_nms", "empty_slots", "box_pooler", "dense_pooler",
                "dense_predictor.deconvs.0"]

    def parts(self, export_model: ParsingRCNN, cfg: ParsingRCNNConfig, layout: str) -> list[Part]:
        if layout != PARTS:
            return super().parts(export_model, cfg, layout)
        from edgecap.models.parsing_rcnn.split import split_model

        return [Part(name, module, ins, outs) for name, (module, ins, outs) in split_model(export_model).items()]

    def part_inputs(self, parts: list[Part], inputs: list[Arrays]) -> dict[str, list[Arrays]]:
        return super().part_inputs(parts, inputs) if len(parts) == 1 else app.part_inputs(parts, inputs)

    def compose(self, layout: str, runners: dict[str, Runner], spec: dict) -> Runner:
        if layout != PARTS:
            return super().compose(layout, runners, spec)
        return app.PartsRunner(*(runners[p["name"]] for p in spec["parts"]), spec)

    def load_data(self, run: ParsingRun, split: str) -> DensePoseSplit:
        return app.load_split(run, split)

    def prepare_training(self, model: ParsingRCNN, train_data: DensePoseSplit) -> None:
        if len(train_data.dataset) == 0:
            raise EdgecapError(f"no training images in {train_data.dataset.json_path}")

    def training_module(self, model: ParsingRCNN, run: ParsingRun) -> nn.Module:
        from edgecap.models.parsing_rcnn.train import ParsingRCNNTrainer

        return ParsingRCNNTrainer(model, run.data.max_dense_rois)

    def qat_finetune(self, model: ParsingRCNN, run: ParsingRun, train_data: DensePoseSplit, steps: int, lr: float,
                     seed: int = 0, progress: bool = True) -> ParsingRCNN:
        """`edgecap quantize --method qat`: see edgecap.models.parsing_rcnn.train.qat_finetune."""
        from edgecap.models.parsing_rcnn.train import qat_finetune

        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        return qat_finetune(model, lambda _step: self.sample_batch(train_data, rng, run.train.batch_size), steps, lr,
                            self.float_modules(run.model), run.data.max_dense_rois, progress, self.facts.qat_objective)

    def sample_batch(self, data: DensePoseSplit, rng: np.random.Generator, batch_size: int):
        return app.sample_batch(data, rng, batch_size)

    def training_loss(self, module: nn.Module, batch, device: torch.device) -> torch.Tensor:
        images, pairs = batch
        return module(torch.from_numpy(images).to(device), pairs)

    def calibration_inputs(self, data: DensePoseSplit, count: int, seed: int = 0) -> list[Arrays]:
        return app.calibration_inputs(data, count, seed)

    def evaluate(self, predict, data: DensePoseSplit, batch_size: int = 1, progress: str | None = None) -> dict:
        return app.evaluate(predict, data, batch_size, progress)

    def output_parity(self, pairs) -> dict:
        """Detections are compared matched to matched, not slot by slot (app.output_parity)."""
        return app.output_parity(pairs)

    def baselines(self, run: ParsingRun, train_data: DensePoseSplit, val_data: DensePoseSplit) -> dict[str, dict]:
        """The untrained model (same seed, no training) on the same validation set."""
        torch.manual_seed(run.train.seed)
        untrained = self.build(run.model).eval()
        runner = TorchRunner(untrained, list(self.input_spec(run.model)), self.output_names(run.model))
        return {"untrained": self.evaluate(batched(runner, None), val_data)}

    def predict_file(self, runner: Runner, cfg: ParsingRCNNConfig, input_path: Path, output_path: Path) -> str:
        return app.predict_file(runner, cfg, input_path, output_path)

    # -- host extras of `edgecap bench` --------------------------------------------------------------

    def bench_references(self, run: ParsingRun) -> list[dict]:
        """Eager fp32 models timed beside the artifacts at the same input size: the paper's
        DensePose R-CNN baseline and Parsing R-CNN (Table 4). Latency does not depend on the
        weights (static shapes, fixed D slots), so they are built untrained."""
        refs = []
        for name in ("densepose_rcnn", "parsing_rcnn"):
            cfg = dataclasses.replace(PRESETS[name], input_size=run.model.input_size,
                                      max_detections=run.model.max_detections)
            refs.append({"name": f"{name}_eager_fp32", "model_config": dataclasses.asdict(cfg)})
        return refs

    def build_reference(self, reference: dict) -> ParsingRCNN:
        from edgecap.core.config import from_dict

        torch.manual_seed(0)
        return self.build(from_dict(ParsingRCNNConfig, reference["model_config"], "bench reference"))

    def bench_scenes(self, run: ParsingRun, out_dir: Path) -> list[dict]:
        return app.bench_scenes(run, out_dir)

    def end_to_end(self, runner: Runner, cfg: ParsingRCNNConfig, scene_file: str):
        return app.end_to_end_step(runner, cfg, scene_file)

    def parameter_table(self) -> str:
        from edgecap.models.parsing_rcnn.params import format_table, parameter_table

        return format_table(parameter_table())
