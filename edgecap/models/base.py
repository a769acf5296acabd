"""The contract every model family answers (see STYLE.md, practice 1).

A family bundles: how to build the nn.Module from its frozen config, the static input spec
and output names of `forward`, the module names kept in float when quantizing, data for
training/calibration/validation, the training loss, and the task-level evaluator. Stages only talk
to a family through these methods, so adding a family touches no stage code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

Arrays = dict[str, np.ndarray]
Predictor = Callable[[Arrays], Arrays]


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}


class ModelFamily(Protocol):
    name: str
    run_config: type  # frozen dataclass with fields model, data, train

    def build(self, cfg: Any) -> torch.nn.Module: ...
    def export_form(self, model: torch.nn.Module) -> torch.nn.Module: ...
    def input_spec(self, cfg: Any) -> dict[str, TensorSpec]: ...
    def output_names(self, cfg: Any) -> list[str]: ...
    def metadata(self, cfg: Any) -> dict[str, str]: ...
    def float_modules(self) -> list[str]: ...
    def load_split(self, run: Any, split: str) -> Any: ...
    def prepare_training(self, model: torch.nn.Module, train_data: Any) -> None: ...
    def sample_batch(self, data: Any, rng: np.random.Generator, batch_size: int) -> Any: ...
    def training_module(self, model: torch.nn.Module, run: Any) -> torch.nn.Module: ...
    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor: ...
    def calibration_inputs(self, data: Any, count: int, seed: int) -> list[Arrays]: ...
    def evaluate(self, predict: Predictor, data: Any, batch_size: int, progress: str | None = None) -> dict: ...
    def baselines(self, run: Any, train_data: Any, val_data: Any) -> dict[str, dict]: ...
    def check_inputs(self, cfg: Any, arrays: Arrays, where: str) -> None: ...


def torch_predictor(model: torch.nn.Module, input_names: list[str], output_names: list[str]) -> Predictor:
    """Wrap an eager module as a named-arrays predictor (any batch size)."""

    @torch.no_grad()
    def predict(arrays: Arrays) -> Arrays:
        outs = model(*[torch.from_numpy(np.ascontiguousarray(arrays[n])) for n in input_names])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.numpy() for n, o in zip(output_names, outs)}

    return predict
