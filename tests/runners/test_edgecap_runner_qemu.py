"""edgecap_runner cross-built for linux-aarch64 (build_linux_aarch64.sh) and run under qemu-user.

ExecuTorch comes from its aarch64 wheel. ONNX Runtime's wheel has the library but no C headers,
so its test runs only when ONNXRUNTIME_INCLUDE_DIR names a folder with onnxruntime_c_api.h.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "runners" / "edgecap_runner" / "build_linux_aarch64.sh"
SYSROOT = Path("/usr/aarch64-linux-gnu")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-g++"), reason="needs aarch64-linux-gnu-g++"),
    pytest.mark.skipif(not shutil.which("qemu-aarch64-static"), reason="needs qemu-aarch64-static"),
    pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake"),
    pytest.mark.skipif(not (SYSROOT / "lib").is_dir(), reason=f"needs the aarch64 sysroot {SYSROOT}"),
]


@pytest.fixture(scope="module")
def runner() -> Path:
    """Builds with executorch, plus onnxruntime when ONNXRUNTIME_INCLUDE_DIR is set."""
    r = subprocess.run(["bash", BUILD_SCRIPT], check=False, capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        cache = Path(os.environ.get("EDGECAP_RUNNER_CACHE", REPO / ".cache" / "edgecap_runner"))
        if not list((cache / "wheels").glob("executorch-*aarch64*.whl")):
            pytest.skip(
                f"no aarch64 executorch wheel in {cache}/wheels and none could be downloaded: {r.stderr[-500:]}"
            )
        pytest.fail(f"build_linux_aarch64.sh failed:\n{r.stderr[-3000:]}")
    return Path(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def qemu_root(tmp_path_factory) -> Path:
    """The aarch64 sysroot plus an ARM /proc/cpuinfo: qemu 7.2 shows the guest the host's x86 one,
    on which cpuinfo (inside ONNX Runtime and XNNPACK) crashes. qemu -L looks paths up here first."""
    root = tmp_path_factory.mktemp("qemu_root")
    for d in SYSROOT.iterdir():
        (root / d.name).symlink_to(d)
    possible = Path("/sys/devices/system/cpu/possible").read_text().strip()  # e.g. "0-1"
    n = int(possible.split(",")[-1].split("-")[-1]) + 1
    core = (
        "BogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n"
        "CPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
    )
    (root / "proc").mkdir()
    (root / "proc" / "cpuinfo").write_text("".join(f"processor\t: {i}\n{core}" for i in range(n)))
    return root


def timing(threads: int, warmup: int, iterations: int) -> list[str]:
    return ["--threads", str(threads), "--warmup", str(warmup), "--iterations", str(iterations)]


def run(runner: Path, root: Path, model: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = ["qemu-aarch64-static", "-L", root, runner, "--model", model, *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)


def check_stdout(
    stdout: str, runtime: str, model: Path, threads: int, inputs: list[str], iterations: int, outputs: list[str]
):
    lines = stdout.splitlines()
    assert lines[0] == f"edgecap_runner version=1 runtime={runtime} model={model} threads={threads}"
    assert re.fullmatch(r"model_load_ms \d+\.\d{3}", lines[1])
    assert lines[2 : 2 + len(inputs)] == [f"input {i} {s}" for i, s in enumerate(inputs)]
    timed = lines[2 + len(inputs) : 2 + len(inputs) + iterations]
    assert all(re.fullmatch(r"iteration_ms \d+\.\d{3}", line) for line in timed) and len(timed) == iterations
    rest = lines[2 + len(inputs) + iterations :]
    assert rest[:-1] == outputs
    assert re.fullmatch(r"peak_rss_kb [1-9]\d*", rest[-1])
    # What edgecap reads from a phone: the real binary's output through edgecap's own parser.
    from edgecap.targets.adb.tools import TOOLS

    parsed = TOOLS["edgecap_runner"].parse(stdout)
    assert len(parsed.times_ms) == iterations and parsed.init_ms is not None and parsed.peak_memory_mb > 0
    assert [f"output {o['index']} {o['file']} {'x'.join(map(str, o['shape']))} {o['dtype']}"
            for o in parsed.outputs] == outputs


@pytest.fixture(scope="module")
def pte_models(tmp_path_factory):
    pytest.importorskip("executorch")
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    d = tmp_path_factory.mktemp("pte")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()).eval()
    x = torch.randn(2, 3, 6)
    for name, partitioner in [("xnnpack", [XnnpackPartitioner()]), ("portable", [])]:
        program = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=partitioner)
        (d / f"{name}.pte").write_bytes(program.to_executorch().buffer)
    np.save(d / "x.npy", x.numpy())
    samples = [x, torch.randn(2, 3, 6), torch.randn(2, 3, 6) * 3]  # for --samples: (input, eager output)
    with torch.no_grad():
        samples = [(s.numpy(), model(s).numpy()) for s in samples]
        return d, model(x).numpy(), model(torch.zeros_like(x)).numpy(), samples


@pytest.mark.parametrize("name", ["xnnpack", "portable"])
def test_executorch_matches_eager(runner, qemu_root, pte_models, tmp_path, name):
    d, expected, _, _ = pte_models
    model, out = d / f"{name}.pte", tmp_path / "out"
    r = run(
        runner,
        qemu_root,
        model,
        *timing(2, 1, 3),
        "--input",
        str(d / "x.npy"),
        "--output-dir",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    check_stdout(r.stdout, "executorch", model, 2, ["2x3x6 float32"], 3, [f"output 0 {out}/out_0.npy 2x3x4 float32"])
    got = np.load(out / "out_0.npy")
    assert got.dtype == np.float32 and np.abs(got - expected).max() <= 1e-5


@pytest.mark.parametrize("name", ["xnnpack", "portable"])
def test_executorch_samples(runner, qemu_root, pte_models, tmp_path, name):
    d, _, _, samples = pte_models
    model, root = d / f"{name}.pte", tmp_path / "samples"
    for k, (x, _) in enumerate(samples):
        (root / str(k)).mkdir(parents=True)
        np.save(root / str(k) / "in_0.npy", x)
    r = run(runner, qemu_root, model, "--threads", "2", "--warmup", "1", "--iterations", "1", "--samples", str(root))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"edgecap_runner version=1 runtime=executorch model={model} threads=2"
    assert re.fullmatch(r"model_load_ms \d+\.\d{3}", lines[1])
    assert re.fullmatch(r"peak_rss_kb [1-9]\d*", lines[-1])
    per_sample = lines[2:-1]
    assert len(per_sample) == 2 * len(samples)
    for k, (_, expected) in enumerate(samples):
        timed, output = per_sample[2 * k : 2 * k + 2]
        assert re.fullmatch(r"iteration_ms \d+\.\d{3}", timed)
        assert output == f"output 0 {root}/{k}/out_0.npy 2x3x4 float32"
        got = np.load(root / str(k) / "out_0.npy")
        assert got.dtype == np.float32 and np.abs(got - expected).max() <= 1e-5
    assert sum(line.startswith("iteration_ms ") for line in lines) == 3
    assert sum(line.startswith("output ") for line in lines) == 3


def test_executorch_zero_inputs_and_min_seconds(runner, qemu_root, pte_models, tmp_path):
    d, _, expected_zeros, _ = pte_models
    r = run(
        runner,
        qemu_root,
        d / "xnnpack.pte",
        *timing(1, 0, 1),
        "--min-seconds",
        "0.2",
        "--output-dir",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    times = [float(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("iteration_ms")]
    assert len(times) >= 1 and sum(times) > 0
    assert "input 0 2x3x6 float32" in r.stdout
    assert np.abs(np.load(tmp_path / "out_0.npy") - expected_zeros).max() <= 1e-5


def test_executorch_rejects_a_wrong_input(runner, qemu_root, pte_models, tmp_path):
    d, _, _, _ = pte_models
    np.save(tmp_path / "bad.npy", np.zeros((1, 3), np.float32))
    r = run(
        runner,
        qemu_root,
        d / "xnnpack.pte",
        *timing(1, 0, 1),
        "--input",
        str(tmp_path / "bad.npy"),
    )
    assert r.returncode == 2
    assert f"input 0 ({tmp_path / 'bad.npy'}): shape 1x3 but the model takes 2x3x6" in r.stderr


@pytest.mark.skipif(
    not os.environ.get("ONNXRUNTIME_INCLUDE_DIR"),
    reason="no PyPI/npm/Debian package ships ONNX Runtime's C headers: set ONNXRUNTIME_INCLUDE_DIR "
    "to a folder with onnxruntime_c_api.h to build and test the onnxruntime backend",
)
def test_onnxruntime_matches_host(runner, qemu_root, tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Add", ["h", "b"], ["y"]),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 6])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 3, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model_proto.ir_version = 8
    model, out = tmp_path / "tiny.onnx", tmp_path / "out"
    onnx.save(model_proto, model)
    x = rng.standard_normal((2, 3, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)

    r = run(
        runner,
        qemu_root,
        model,
        *timing(2, 1, 4),
        "--input",
        str(tmp_path / "x.npy"),
        "--output-dir",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    check_stdout(r.stdout, "onnxruntime", model, 2, ["2x3x6 float32"], 4, [f"output 0 {out}/out_0.npy 2x3x4 float32"])
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(np.load(out / "out_0.npy") - expected).max() <= 1e-5

    r = run(runner, qemu_root, model, "--threads", "1", "--warmup", "0", "--iterations", "1")  # dynamic dim -> 1
    assert r.returncode == 0 and "input 0 1x3x6 float32" in r.stdout, r.stderr
