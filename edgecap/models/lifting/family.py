"""The family contract (edgecap.models.contract) for temporal 2D->3D lifting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgecap import EdgecapError, __version__
from edgecap.core.arrays import Arrays, TensorSpec
from edgecap.core.config import TrainConfig
from edgecap.data.motion import MotionDataConfig, load_motion_windows
from edgecap.data.skeletons import get_skeleton
from edgecap.data.windows import PoseWindows
from edgecap.models.contract import FamilyFacts, ModelFamily
from edgecap.models.lifting import app
from edgecap.models.lifting.model import LiftingConfig, TemporalLifter, fold_for_export


@dataclass(frozen=True)
class LiftingRun:
    model: LiftingConfig = LiftingConfig()
    data: MotionDataConfig = MotionDataConfig()
    train: TrainConfig = TrainConfig(steps=4000)


class LiftingFamily(ModelFamily):
    facts = FamilyFacts(
        name="lifting",
        run_config=LiftingRun,
        metrics=("mpjpe_mm", "p_mpjpe_mm"),
        better="lower",
        tolerances={
            "fp32": {"metrics": ["mpjpe_mm", "p_mpjpe_mm"], "max_abs_delta": 0.1},
            "int8": {"metrics": ["mpjpe_mm", "p_mpjpe_mm"], "max_rel_delta": 0.02, "better": "lower"},
        },
        quick_overrides=("model.hidden=64", "model.blocks=1", "train.steps=40", "train.batch_size=64",
                         "train.eval_every=20", "train.checkpoint_every=20", "data.train_sequences=24",
                         "data.val_sequences=4", "data.frames=60", "data.real_sequences=4"),
    )

    def build(self, cfg: LiftingConfig) -> TemporalLifter:
        return TemporalLifter(cfg)

    def export_form(self, model: TemporalLifter) -> TemporalLifter:
        return fold_for_export(model)

    def input_spec(self, cfg: LiftingConfig) -> dict[str, TensorSpec]:
        return {app.INPUT: TensorSpec((1, cfg.window, get_skeleton(cfg.skeleton).num_joints, 3))}

    def output_names(self, cfg: LiftingConfig) -> list[str]:
        return [app.OUTPUT]

    def metadata(self, cfg: LiftingConfig) -> dict[str, str]:
        skeleton = get_skeleton(cfg.skeleton)
        return {
            "edgecap_version": __version__,
            "model": self.name,
            "input_spec": f"{app.INPUT}: float32[1,{cfg.window},{skeleton.num_joints},3] (x_px, y_px, validity)",
            "output_spec": f"{app.OUTPUT}: float32[1,{skeleton.num_joints},3] root-relative mm, camera frame",
            "normalization": "per-window root centring (weights " + str(skeleton.root_weights)
            + "), RMS-distance scale; output = z*pose_std + pose_mean (in graph)",
            "skeleton": skeleton.name,
            "joints": ",".join(skeleton.joints),
            "window": str(cfg.window),
            "target_frame": cfg.target,
            "mirror_average": str(cfg.mirror_average).lower(),  # true: two lifts per frame, averaged
        }

    def float_modules(self, cfg: LiftingConfig) -> list[str]:
        # Pixel-range inputs and millimetre outputs lose too much at 8 bits; only the MLP is int8.
        return ["normalize", "denormalize"] + (["mirror_pair", "mirror_mean"] if cfg.mirror_average else [])

    def load_data(self, run: LiftingRun, split: str) -> PoseWindows:
        return load_motion_windows(run.data, run.model.skeleton, run.model.window, run.model.target, split)

    def prepare_training(self, model: TemporalLifter, train_data: PoseWindows) -> None:
        model.set_pose_statistics(torch.from_numpy(train_data.target_poses()))

    def sample_batch(self, data: PoseWindows, rng: np.random.Generator, batch_size: int):
        return app.sample_batch(data, rng, batch_size)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vector_norm(outputs.float() - targets, dim=-1).mean()  # MPJPE, mm

    def training_loss(self, module: torch.nn.Module, batch: tuple[Arrays, np.ndarray], device: torch.device):
        inputs, targets = batch
        return self.loss(module(torch.from_numpy(inputs[app.INPUT]).to(device)), torch.from_numpy(targets).to(device))

    def calibration_inputs(self, data: PoseWindows, count: int, seed: int = 0) -> list[Arrays]:
        return app.calibration_inputs(data, count, seed)

    def evaluate(self, predict, data: PoseWindows, batch_size: int = 1024, progress: str | None = None) -> dict:
        return app.evaluate(predict, data, batch_size, progress)

    def evaluation_sets(self) -> dict[str, str]:
        return {"real-motion": "real mocap clips filmed by virtual cameras, errors on the direct joints"}

    def evaluation_set_missing(self, name: str, run: LiftingRun) -> str | None:
        from edgecap.data.real_motion import cache_missing

        if name != "real-motion":
            return super().evaluation_set_missing(name, run)
        if run.model.skeleton != "h36m":
            return f"it scores the h36m skeleton; this run has model.skeleton={run.model.skeleton}"
        return cache_missing()

    def evaluate_on(self, name: str, predict, run: LiftingRun, options: dict) -> tuple[dict, str]:
        if name != "real-motion":
            return super().evaluate_on(name, predict, run, options)
        from edgecap.data.real_motion import load_clips
        from edgecap.models.lifting import real_motion

        if run.model.skeleton != "h36m":
            raise EdgecapError(f"real-motion evaluates the h36m skeleton; this run has model.skeleton="
                               f"{run.model.skeleton!r}")
        cameras = int(options["cameras"]) if options.get("cameras") is not None else real_motion.CAMERAS
        if not 1 <= cameras <= 64:
            raise EdgecapError(f"--cameras must be in [1, 64], got {cameras}")
        clips = load_clips(options.get("cache"), "eval")
        result = real_motion.evaluate_real_motion(predict, clips, run.data.fps, run.model.window, run.model.target,
                                                  cameras, bool(options.get("noise")))
        return result, real_motion.format_table(result)

    def baselines(self, run: LiftingRun, train_data: PoseWindows, val_data: PoseWindows) -> dict[str, dict]:
        return {"mean_pose": app.mean_pose_baseline(train_data, val_data)}

    def predict_file(self, runner, cfg: LiftingConfig, input_path, output_path) -> str:
        return app.predict_file(runner, cfg, input_path, output_path)
