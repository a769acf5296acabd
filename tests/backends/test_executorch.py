"""ExecuTorch (XNNPACK) export + runner on a small lifter trained for a few seconds."""

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.backends.executorch.export import export_executorch
from edgecap.backends.executorch.runner import ExecuTorchRunner
from edgecap.models.lifting.app import INPUT, OUTPUT
from tests.small_lifter import FAM, RUN, export_both


@pytest.fixture(scope="module")
def artifacts(lifter, tmp_path_factory):
    model, calib, windows, _ = lifter
    return export_both(export_executorch, model, windows, calib, tmp_path_factory.mktemp("pte"), ".pte")


def run_all(runner, windows):
    return np.concatenate([runner.run({INPUT: w[None]})[OUTPUT] for w in windows])


def test_fp32_matches_eager_and_is_delegated(lifter, artifacts):
    _, _, windows, eager = lifter
    path, record = artifacts["fp32"]
    runner = ExecuTorchRunner(path)  # names read from the program's constant methods
    assert runner.input_names == [INPUT] and runner.output_names == [OUTPUT]
    assert runner.metadata() == FAM.metadata(RUN.model)
    d = record.details
    # Every Linear/ReLU is delegated; the reductions of the normalizer stay on portable kernels.
    assert d["delegated_nodes"] > 0 and d["delegated_subgraphs"] >= 1
    assert d["portable_ops"] and all("addmm" not in op and "linear" not in op for op in d["portable_ops"])
    assert any("constant method" in n for n in record.notes)
    err = np.abs(run_all(runner, windows) - eager).max()
    assert err <= 1e-4 * np.abs(eager).max(), f"fp32 max error {err:.2e} mm"


def test_int8_is_smaller_delegated_and_close(lifter, artifacts):
    _, _, windows, eager = lifter
    path, record = artifacts["int8"]
    assert path.stat().st_size < 0.5 * artifacts["fp32"][0].stat().st_size
    d = record.details
    assert d["quantize_ops"] > 0 and d["delegated_nodes"] > artifacts["fp32"][1].details["delegated_nodes"]
    # KeepFloat: the normalizer and denormalizer run the same (fp32) portable ops in both programs.
    assert d["portable_ops"] == artifacts["fp32"][1].details["portable_ops"]
    runner = ExecuTorchRunner(path, threads=2, input_names=[INPUT], output_names=[OUTPUT])
    diff = np.linalg.norm(run_all(runner, windows) - eager, axis=-1)  # per joint, mm
    spread = np.linalg.norm(eager - eager.mean(0), axis=-1).mean()
    assert diff.mean() < 0.05 * spread, f"int8 mean joint error {diff.mean():.2f} mm vs pose spread {spread:.1f} mm"


def test_runner_threads_and_name_checks(artifacts, lifter):
    from executorch.extension.pybindings import portable_lib

    path = artifacts["fp32"][0]
    one, two = ExecuTorchRunner(path, threads=1), ExecuTorchRunner(path, threads=2)
    x = {INPUT: lifter[2][:1]}
    two.run(x)
    assert portable_lib._threadpool_get_thread_count() == 2
    one.run(x)  # the pool is process-global: each runner re-applies its own size
    assert portable_lib._threadpool_get_thread_count() == 1
    with pytest.raises(EdgecapError, match="input"):
        ExecuTorchRunner(path, input_names=["a", "b"])
    with pytest.raises(EdgecapError, match="shape"):
        one.run({INPUT: lifter[2][:1, :4]})
