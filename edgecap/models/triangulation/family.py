"""The family contract (edgecap.models.contract) for learnable algebraic triangulation
(Iskakov et al., ICCV 2019): per-view heatmaps + confidences, confidence-weighted DLT.

Layouts: "whole" (one graph: all V views as a batch, plus the projections) and "parts"
(`per_view`: one image and its lens -> undistorted 2D points + confidences, run V times on
the cameras; `triangulate`: the DLT, on the hub), glued by
app.PartsRunner. Outputs: model.TriangulationNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from edgecap import EdgecapError, __version__
from edgecap.core.arrays import Arrays, TensorSpec
from edgecap.core.config import TrainConfig
from edgecap.core.parts import Part
from edgecap.core.runner import Runner
from edgecap.data.multiview.synthetic_rigs import JOINTS, RigDataConfig
from edgecap.models.contract import WHOLE, FamilyFacts, ModelFamily
from edgecap.models.triangulation import app
from edgecap.models.triangulation.model import (HEATMAP_STRIDE, IMAGE_MEAN, IMAGE_STD, NUM_JOINTS, PerViewPart,
                                                TriangulatePart, TriangulationConfig, TriangulationNet,
                                                fold_for_export, heatmap_cross_entropy, points_l1_px, soft_mse_3d)

PARTS = "parts"
MM_METRICS = ["mpjpe_mm", "mpjpe_abs_mm"]


@dataclass(frozen=True)
class TriangulationRun:
    model: TriangulationConfig = TriangulationConfig()
    data: RigDataConfig = RigDataConfig()
    train: TrainConfig = TrainConfig(steps=3000, batch_size=8, lr=1e-3, warmup_steps=100, eval_every=1000,
                                     checkpoint_every=250)


class TriangulationFamily(ModelFamily):
    facts = FamilyFacts(
        name="triangulation",
        run_config=TriangulationRun,
        metrics=("mpjpe_mm", "mpjpe_abs_mm", "reprojection_px", "invalid_share"),
        better="lower",
        tolerances={
            "fp32": {"metrics": MM_METRICS, "max_abs_delta": 0.1},
            "int8": {"metrics": MM_METRICS, "max_rel_delta": 0.03, "better": "lower"},
        },
        layouts=(WHOLE, PARTS),
        default_layouts=(WHOLE, PARTS),
        calibration_count=64,  # samples (x V views each)
        calibration_split="train",
        quick_overrides=("model.image_size=64", "data.image_size=64", "model.head_channels=16",
                         "model.confidence_hidden=16", "data.sequences=4", "data.val_sequences=2", "data.frames=8",
                         "train.steps=20", "train.batch_size=4", "train.warmup_steps=2", "train.eval_every=20",
                         "train.checkpoint_every=20"),
    )

    def build(self, cfg: TriangulationConfig) -> TriangulationNet:
        return TriangulationNet(cfg)

    def export_form(self, model: TriangulationNet) -> TriangulationNet:
        return fold_for_export(model)

    def input_spec(self, cfg: TriangulationConfig) -> dict[str, TensorSpec]:
        v, s = cfg.views, cfg.image_size
        return {"views": TensorSpec((1, v, 3, s, s)), "projections": TensorSpec((1, v, 3, 4)),
                "camera_matrices": TensorSpec((1, v, 3, 3)), "distortions": TensorSpec((1, v, 5))}

    def output_names(self, cfg: TriangulationConfig) -> list[str]:
        return list(app.OUTPUTS)

    def metadata(self, cfg: TriangulationConfig) -> dict[str, str]:
        v, s, j = cfg.views, cfg.image_size, NUM_JOINTS
        return {
            "edgecap_version": __version__, "model": self.name, "backbone": cfg.backbone,
            "input_spec": f"views: float32[1,{v},3,{s},{s}] RGB 0..255 as seen; projections: float32[1,{v},3,4] "
                          "P = K[R|t] in each view's pixels (integer = pixel centre), world mm, "
                          "P = 0 for a missing view; "
                          f"camera_matrices: float32[1,{v},3,3] K; distortions: float32[1,{v},5] OpenCV k1,k2,p1,p2,k3",
            "output_spec": f"joints_3d[1,{j},3] world mm (0 if invalid), valid[1,{j}] 0/1, points_2d[1,{v},{j},2] px "
                           "undistorted, "
                           f"confidences[1,{v},{j}] (0..1, before masking missing views)",
            "normalization": "(x / 255 - mean) / std in the graph",
            "mean": ",".join(map(str, IMAGE_MEAN)), "std": ",".join(map(str, IMAGE_STD)),
            "image_size": str(s), "views": str(v), "heatmap_stride": str(HEATMAP_STRIDE),
            "skeleton": "h36m", "joints": ",".join(JOINTS),
        }

    def float_modules(self, cfg: TriangulationConfig) -> list[str]:
        # The soft-argmax turns heatmaps into pixel coordinates: an int8 coordinate over a 96 px
        # range steps by ~0.4 px, tens of mm at 3 m. The triangulation is a 4x4 normal-equation
        # solve in a handful of ops (matmul, adjugate, division by a determinant): in int8 its
        # determinants and Rayleigh quotients lose all of the mm precision, and it costs nothing in fp32.
        # The confidence head (pool, two small linears, a sigmoid) stays fp32 too: its outputs are
        # handed to the fp32 hub part as they are, and it is a negligible share of the per-view graph.
        # The undistortion divides by focal lengths and polynomials of normalised coordinates: fp32.
        return ["per_view.soft_argmax", "per_view.undistort", "per_view.confidence_head", "triangulate"]

    def parts(self, export_model: TriangulationNet, cfg: TriangulationConfig, layout: str) -> list[Part]:
        if layout != PARTS:
            return super().parts(export_model, cfg, layout)
        modules = {app.PER_VIEW: PerViewPart(export_model), app.TRIANGULATE: TriangulatePart(export_model)}
        # The hub's part is the DLT alone: it stays fp32 in an int8 artifact (see float_modules).
        return [Part(name, modules[name], *app.PART_IO[name], float_only=name == app.TRIANGULATE)
                for name in (app.PER_VIEW, app.TRIANGULATE)]

    def part_inputs(self, parts: list[Part], inputs: list[Arrays]) -> dict[str, list[Arrays]]:
        return super().part_inputs(parts, inputs) if len(parts) == 1 else app.part_inputs(parts, inputs)

    def compose(self, layout: str, runners: dict[str, Runner], spec: dict) -> Runner:
        if layout != PARTS:
            return super().compose(layout, runners, spec)
        return app.PartsRunner(runners[app.PER_VIEW], runners[app.TRIANGULATE], spec)

    # -- task side ----------------------------------------------------------------------------------

    def load_data(self, run: TriangulationRun, split: str) -> app.RigSplit:
        return app.load_split(run.model, run.data, split)

    def sample_batch(self, data: app.RigSplit, rng: np.random.Generator, batch_size: int):
        return app.sample_batch(data, rng, batch_size)

    def loss(self, outputs, targets: torch.Tensor) -> torch.Tensor:
        """The reference's soft MSE on 3D joints (model.soft_mse_3d) over joints visible in two or
        more views (and triangulated); `outputs` is the model's tuple or its joints_3d. targets:
        app.pack_targets' layout."""
        joints, valid = (outputs[0], outputs[1]) if isinstance(outputs, (tuple, list)) else (outputs, None)
        weight = targets[..., 3] if valid is None else targets[..., 3] * valid
        return soft_mse_3d(joints, targets[..., :3], weight)

    def training_loss(self, module: nn.Module, batch: tuple[Arrays, np.ndarray], device: torch.device):
        """loss + model.heatmap_weight * the heatmap cross-entropy + model.aux_2d_weight * the
        soft-argmax L1 (px, undistorted), both over every joint inside the frame of a real view,
        seen or occluded (the 2D network learns where an occluded joint is, as 2D datasets label
        it; the confidences learn how far to trust that)."""
        inputs, targets = batch
        targets = torch.from_numpy(targets).to(device)
        core = module.module if isinstance(module, DistributedDataParallel) else module
        cfg = core.cfg
        captured = []
        hook = core.per_view.heatmap_head.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            outputs = module(*(torch.from_numpy(inputs[n]).to(device) for n in app.INPUTS))
        finally:
            hook.remove()
        loss = self.loss(outputs, targets)
        t = app.unpack_targets(targets, cfg.views)
        n, v = t["in_frame"].shape[:2]
        if cfg.aux_2d_weight > 0:
            loss = loss + cfg.aux_2d_weight * points_l1_px(outputs[2], t["points_undistorted"], t["in_frame"])
        if cfg.heatmap_weight > 0:
            logits = core.per_view.soft_argmax.logits(captured[0]).reshape(n, v, NUM_JOINTS, -1)
            loss = loss + cfg.heatmap_weight * heatmap_cross_entropy(logits, t["points"], t["in_frame"],
                                                                     cfg.heatmap_size)
        return loss

    def calibration_inputs(self, data: app.RigSplit, count: int, seed: int = 0) -> list[Arrays]:
        return app.calibration_inputs(data, count, seed)

    def evaluate(self, predict, data: app.RigSplit, batch_size: int = app.EVAL_BATCH,
                 progress: str | None = None) -> dict:
        return app.evaluate(predict, data, batch_size, progress)

    def baselines(self, run: TriangulationRun, train_data: app.RigSplit, val_data: app.RigSplit) -> dict[str, dict]:
        """`gt_2d`: the DLT on the true 2D points of the views that see each joint (perfect 2D);
        `mean_pose`: the training mean pose at the world origin. The baselines over the model's
        own 2D outputs (unweighted, RANSAC, float64 SVD) are in each evaluation's `same_2d`."""
        return {"gt_2d": app.gt_2d_baseline(val_data), "mean_pose": app.mean_pose_baseline(train_data, val_data)}

    def predict_file(self, runner: Runner, cfg: TriangulationConfig, input_path: Path, output_path: Path) -> str:
        if Path(input_path).suffix != ".npz":
            raise EdgecapError(f"{input_path}: expected a .npz with arrays 'views' and 'projections'")
        return app.predict_file(runner, cfg, input_path, output_path)
