"""The Runner interface: named numpy arrays in, named numpy arrays out.

Every backend's runtime, PyTorch eager, a simulated int8 model and a family's composition of
several parts all answer it, so validation, benchmarking and apps run the same code over any
of them.
"""

from __future__ import annotations

import numpy as np
import torch

from edgecap import EdgecapError
from edgecap.core.arrays import Arrays, check_named_arrays


class RunnerUnavailable(EdgecapError):
    """The artifact is valid but this host cannot execute it (e.g. Core ML off macOS)."""


class Runner:
    format: str = ""
    input_names: list[str]
    output_names: list[str]
    # Input shapes, None on an axis of any size; set by the backends' runners ({}: not known, e.g. eager).
    input_shapes: dict[str, tuple] = {}

    def run(self, inputs: Arrays) -> Arrays:
        raise NotImplementedError

    def run_many(self, samples: list[Arrays]) -> list[Arrays]:
        """Several independent runs; a runner with a costly round trip (a phone) does them in one."""
        return [self.run(x) for x in samples]

    def metadata(self) -> dict:
        """What the artifact stores about itself (edgecap writes its model facts there); {} if nothing."""
        return {}


class TorchRunner(Runner):
    """PyTorch eager, the reference every artifact is compared with."""

    format = "pytorch"

    def __init__(self, model: torch.nn.Module, input_names: list[str], output_names: list[str],
                 threads: int | None = None):
        # Graph modules from torch.export/PT2E refuse .eval(); they were exported in eval mode.
        self.model = model if isinstance(model, torch.fx.GraphModule) else model.eval()
        self.input_names, self.output_names = list(input_names), list(output_names)
        if threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def run(self, inputs: Arrays) -> Arrays:
        outs = self.model(*[torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names])
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        return {n: o.numpy() for n, o in zip(self.output_names, outs)}


def batched(runner: Runner, static_batch: int | None = 1):
    """A predictor for any batch size over a runner whose artifact takes `static_batch` rows."""

    def predict(arrays: Arrays) -> Arrays:
        n = len(next(iter(arrays.values())))
        if static_batch is None or n == static_batch:
            return runner.run(arrays)
        parts = runner.run_many([{k: v[i : i + static_batch] for k, v in arrays.items()}
                                 for i in range(0, n, static_batch)])
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return predict


class CheckedRunner(Runner):
    """Checks names, shapes, dtype and finiteness of every input before the runtime sees it."""

    def __init__(self, runner: Runner, shapes: dict[str, tuple], where: str):
        self._check = lambda arrays: check_named_arrays(arrays, shapes, where)
        self.runner, self.format = runner, runner.format
        self.input_names, self.output_names = runner.input_names, runner.output_names

    def run(self, inputs: Arrays) -> Arrays:
        self._check(inputs)
        return self.runner.run({k: np.asarray(v, np.float32) for k, v in inputs.items()})

    def metadata(self) -> dict:
        return self.runner.metadata()


def example_inputs(shapes: dict[str, tuple], seed: int = 0) -> Arrays:
    """Standard-normal float32 inputs of the given shapes (an axis of any size gets 1): what a model
    from elsewhere is timed on when the user gives no inputs."""
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal(tuple(1 if d is None else d for d in s)).astype(np.float32)
            for n, s in shapes.items()}
