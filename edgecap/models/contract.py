"""The contract every model family answers: `FamilyFacts` (what a family is) and `ModelFamily`
(what it does). Stages talk to a family only through these; nothing is probed with hasattr.

A family lives in one folder, `edgecap/models/<name>/`:
    model.py    nn.Modules: tensors in, tensors out, static shapes
    app.py      the task side: data, pre/post-processing, evaluation, prediction on files; every
                function takes a runner or predictor, so eager, simulated int8 and any artifact
                run through the same code
    family.py   a `ModelFamily` subclass tying the two together, with its `FamilyFacts`
and is listed in `edgecap.models.FAMILIES`. Abstract methods must be written; every other
method has its one default here.

Parts and layouts. A layout is a way to deploy the model: "whole" (one graph, the default) or
a family-named set of graphs (`parts`). Export writes one artifact per layout, format and
precision; a multi-part artifact is a folder of per-part files (edgecap.core.parts), and the
family's `compose` glues the part runners back into one runner with the whole model's inputs
and outputs. Stages never name a part or a layout other than "whole".
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, TensorSpec
from edgecap.core.parts import Part
from edgecap.core.runner import Runner

Predictor = Callable[[Arrays], Arrays]
WHOLE = "whole"


@dataclass(frozen=True)
class TrainingPhase:
    """One optimizer of the training loop: its name, the parameters it moves, and its learning
    rate as a multiple of train.lr (AdamW with train.weight_decay, the shared schedule)."""

    name: str
    parameters: list
    lr_scale: float = 1.0
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class FamilyFacts:
    """What a family is, as data."""

    name: str
    run_config: type  # frozen dataclass with fields model, data, train
    # Task metrics, headline first: validate compares each artifact with PyTorch on these.
    metrics: tuple[str, ...]
    better: str  # "higher" | "lower": the headline metric's direction
    # Task-level parity rules against PyTorch eager fp32, per precision (edgecap.stages.validate).
    tolerances: Mapping[str, Mapping[str, Any]]
    presets: Mapping[str, Any] = field(default_factory=dict)  # named model configs (`--config`)
    layouts: tuple[str, ...] = (WHOLE,)
    default_layouts: tuple[str, ...] = (WHOLE,)  # exported when the user names none
    calibration_count: int = 256  # inputs PTQ calibrates on
    calibration_split: str = "val"  # "train" keeps the validation set unseen
    batchable: bool = True  # False: the graph takes exactly one input row
    qat_lr: float = 2e-5
    qat_objective: str = "task"  # what QAT fine-tunes against (recorded in quant.json)
    # How the metrics are measured, where the report should say it (judging networks, pairs...).
    metric_notes: str = ""
    # `key=value` overrides for a seconds-scale run (tiny model and data): smoke tests, the
    # generic family tests, and a first look before the real run.
    quick_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise EdgecapError(f"family {self.name}: better must be 'higher' or 'lower', got {self.better!r}")
        if WHOLE not in self.layouts:
            raise EdgecapError(f"family {self.name}: layouts {self.layouts} must include {WHOLE!r}")
        if not self.default_layouts or not set(self.default_layouts) <= set(self.layouts):
            raise EdgecapError(f"family {self.name}: default_layouts {self.default_layouts} must be some of "
                               f"{self.layouts}")


class ModelFamily(abc.ABC):
    facts: FamilyFacts

    @property
    def name(self) -> str:
        return self.facts.name

    # -- model side -----------------------------------------------------------------------------

    @abc.abstractmethod
    def build(self, cfg: Any) -> torch.nn.Module:
        """The trainable model of a model config."""

    @abc.abstractmethod
    def export_form(self, model: torch.nn.Module) -> torch.nn.Module:
        """An eval-mode copy for export and quantization (BatchNorm folded, ...); same outputs."""

    @abc.abstractmethod
    def input_spec(self, cfg: Any) -> dict[str, TensorSpec]:
        """Static shapes of `forward`'s inputs, in order."""

    @abc.abstractmethod
    def output_names(self, cfg: Any) -> list[str]:
        """Names of `forward`'s outputs, in order."""

    @abc.abstractmethod
    def metadata(self, cfg: Any) -> dict[str, str]:
        """Pre/post-processing facts stored in every artifact (input size, mean/std, joint names...)."""

    def float_modules(self, cfg: Any) -> list[str]:
        """Submodules of `cfg`'s export form kept in fp32 by every int8 path (each one it has)."""
        return []

    def parts(self, export_model: torch.nn.Module, cfg: Any, layout: str) -> list[Part]:
        """The deployable graphs of a layout; "whole" is the model itself."""
        if layout != WHOLE:
            raise EdgecapError(f"{self.name} has no layout {layout!r}; layouts: {list(self.facts.layouts)}")
        return [Part(WHOLE, export_model, list(self.input_spec(cfg)), self.output_names(cfg))]

    def part_inputs(self, parts: list[Part], inputs: list[Arrays]) -> dict[str, list[Arrays]]:
        """Example/calibration inputs of each part, from the whole model's `inputs`."""
        if len(parts) != 1:
            raise EdgecapError(f"{self.name}: a multi-part layout must say how its parts are fed (part_inputs)")
        return {parts[0].name: list(inputs)}

    def compose(self, layout: str, runners: dict[str, Runner], spec: dict) -> Runner:
        """One runner over a layout's part runners, with the whole model's inputs and outputs.
        `spec` is the artifact's parts.json (edgecap.core.parts)."""
        if len(runners) != 1:
            raise EdgecapError(f"{self.name}: layout {layout!r} has {len(runners)} parts and no composition")
        return next(iter(runners.values()))

    # -- task side ------------------------------------------------------------------------------

    @abc.abstractmethod
    def load_data(self, run: Any, split: str) -> Any:
        """The "train" or "val" data of a run config."""

    @abc.abstractmethod
    def sample_batch(self, data: Any, rng: np.random.Generator, batch_size: int) -> Any:
        """A training batch, whatever `training_loss` takes."""

    @abc.abstractmethod
    def training_loss(self, module: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """The scalar loss of `training_module`'s forward on a batch."""

    @abc.abstractmethod
    def calibration_inputs(self, data: Any, count: int, seed: int = 0) -> list[Arrays]:
        """`count` real model inputs (batch 1) from the data: calibration, tracing, parity."""

    @abc.abstractmethod
    def evaluate(self, predict: Predictor, data: Any, batch_size: int = 1, progress: str | None = None) -> dict:
        """Task metrics of any predictor (eager, simulated int8, an artifact's runner) on the data."""

    @abc.abstractmethod
    def predict_file(self, runner: Runner, cfg: Any, input_path: Path, output_path: Path) -> str:
        """Run over a user's input file, write the result; returns a one-line summary."""

    def training_phases(self, model: torch.nn.Module, run: Any) -> list[TrainingPhase]:
        """The optimizer steps of one training iteration, in order, each on the same batch. One
        phase over every parameter by default; an adversarial family has two (its model, then its
        discriminator on the model's detached output), each with its own optimizer, stepped
        alternately. The first phase's loss is the one the training log and progress bar show."""
        return [TrainingPhase("model", list(model.parameters()))]

    def phase_loss(self, module: torch.nn.Module, batch: Any, device: torch.device, phase: str,
                   shared: dict) -> torch.Tensor:
        """The loss a phase descends. `shared` lives for one iteration, so a later phase can reuse
        what an earlier one computed (a generator's output, say). An earlier phase's optimizer has
        stepped by then: reuse its tensors detached, or recompute them. Default: `training_loss`."""
        return self.training_loss(module, batch, device)

    def prepare_training(self, model: torch.nn.Module, train_data: Any) -> None:
        """Anything the model needs from the training data before the first step."""

    def training_module(self, model: torch.nn.Module, run: Any) -> torch.nn.Module:
        """What the training loop (and DDP) wraps: one forward that `training_loss` calls."""
        return model

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """A supervised loss on (outputs, targets); the default QAT fine-tunes against it."""
        raise EdgecapError(f"{self.name} has no supervised loss for QAT; it must define qat_finetune")

    def qat_finetune(self, model: torch.nn.Module, run: Any, train_data: Any, steps: int, lr: float,
                     seed: int = 0, progress: bool = True) -> torch.nn.Module:
        """Fine-tune the export form under int8 fake quantization; returns a float copy. The
        default: batches of (inputs, targets) from `sample_batch` against `loss`."""
        from edgecap.quantization.qat import qat_finetune

        names = list(self.input_spec(run.model))
        rng = np.random.default_rng(seed)

        def sample(_step):
            inputs, targets = self.sample_batch(train_data, rng, run.train.batch_size)
            return tuple(torch.from_numpy(inputs[n]) for n in names), torch.from_numpy(targets)

        example = tuple(torch.from_numpy(a) for a in self.calibration_inputs(train_data, 1, seed)[0].values())
        return qat_finetune(model, example, sample, self.loss, steps, lr, self.float_modules(run.model))

    def baselines(self, run: Any, train_data: Any, val_data: Any) -> dict[str, dict]:
        """Trivial predictors' metrics on the validation set, reported beside the model's."""
        return {}

    def output_parity(self, pairs) -> dict:
        """Tensor parity over (artifact outputs, PyTorch outputs) pairs: worst |diff| and cosine."""
        max_abs = dots = n_art = n_ref = 0.0
        samples = 0
        for outputs, reference in pairs:
            samples += 1
            for name in reference:
                da = outputs[name].astype(np.float64).ravel()
                dr = reference[name].astype(np.float64).ravel()
                max_abs = max(max_abs, float(np.abs(da - dr).max()))
                dots += float(da @ dr)
                n_art += float(da @ da)
                n_ref += float(dr @ dr)
        return {"max_abs_diff": max_abs, "cosine": dots / max(np.sqrt(n_art * n_ref), 1e-30), "samples": samples}

    # -- host extras of `edgecap bench` (none by default) ------------------------------------------

    def bench_references(self, run: Any) -> list[dict]:
        """Other models timed eager beside the artifacts on the host: [{"name", "model_config"}]."""
        return []

    def build_reference(self, reference: dict) -> torch.nn.Module:
        """The trainable (not export-form) model of a bench reference."""
        raise EdgecapError(f"{self.name} has no bench references")

    def bench_scenes(self, run: Any, out_dir: Path) -> list[dict]:
        """End-to-end inputs for the host bench: [{"label", "file", ...facts}]."""
        return []

    def end_to_end(self, runner: Runner, cfg: Any, scene_file: str) -> Callable[[], dict]:
        """A step that runs the app's whole path on a scene file; returns facts of the result."""
        raise EdgecapError(f"{self.name} has no end-to-end bench")

    def parameter_table(self) -> str | None:
        """A table of the presets' sizes (`edgecap params`), or None."""
        return None

    def evaluation_sets(self) -> dict[str, str]:
        """Extra evaluation sets beyond the validation split, {name: one-line description}, run
        by `edgecap evaluate RUN --on NAME` through `evaluate_on`."""
        return {}

    def evaluation_set_missing(self, name: str, run: Any) -> str | None:
        """Why the extra evaluation set `name` cannot run here for this run config (its data is
        not fetched, the run's layout does not fit it), or None; the pipeline evaluates the sets
        that can."""
        return None

    def evaluate_on(self, name: str, predict, run: Any, options: dict) -> tuple[dict, str]:
        """(result for RUN/evaluate_<name>.json, a table to print) of `predict` (the PyTorch
        model as a Runner.run) on the extra evaluation set `name`."""
        raise EdgecapError(f"{self.name} has no evaluation set {name!r}; it has {sorted(self.evaluation_sets())}")
