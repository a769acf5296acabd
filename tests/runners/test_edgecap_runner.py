"""edgecap_runner built for the host with no backend: its usage errors and its .npy reader/writer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

RUNNER_SRC = Path(__file__).resolve().parents[2] / "runners" / "edgecap_runner"

pytestmark = pytest.mark.skipif(
    not (shutil.which("cmake") and shutil.which("g++")), reason="needs cmake and g++ to build edgecap_runner"
)


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("runner_host")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", RUNNER_SRC, "-B", build, *generator], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build], check=True, capture_output=True)
    return build / "edgecap_runner"


def run(runner: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([runner, *args], check=False, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    "suffix, option",
    [(".onnx", "EDGECAP_WITH_ONNXRUNTIME"), (".pte", "EDGECAP_WITH_EXECUTORCH"), (".tflite", "EDGECAP_WITH_LITERT")],
)
def test_refuses_a_model_whose_backend_is_not_built(runner, tmp_path, suffix, option):
    model = tmp_path / f"model{suffix}"
    model.write_bytes(b"")
    r = run(runner, "--model", str(model), "--threads", "2", "--warmup", "1", "--iterations", "3")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and suffix in r.stderr and f"-D{option}=ON" in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--model is required"),
        (["--model", "m.onnx", "--warmup", "0", "--iterations", "1"], "--threads is required"),
        (
            ["--model", "m.onnx", "--threads", "0", "--warmup", "0", "--iterations", "1"],
            "--threads wants an integer >= 1",
        ),
        (["--model", "m.onnx", "--threads", "1", "--warmup", "x", "--iterations", "1"], "--warmup wants an integer"),
        (
            ["--model", "m.onnx", "--threads", "1", "--warmup", "0", "--iterations", "1", "--min-seconds", "-1"],
            "--min-seconds wants a number",
        ),
        (["--model", "m.onnx", "--bogus", "1"], "unknown option '--bogus'"),
        (["--model"], "--model needs a value"),
        (["--model", "m.bin", "--threads", "1", "--warmup", "0", "--iterations", "1"], "unknown suffix '.bin'"),
        (
            ["--model", "m.onnx", "--threads", "1", "--warmup", "0", "--iterations", "1"]
            + ["--samples", "s", "--input", "x.npy"],
            "--samples takes the place of --input and --output-dir",
        ),
        (
            ["--model", "m.onnx", "--threads", "1", "--warmup", "0", "--iterations", "1"]
            + ["--output-dir", "o", "--samples", "s"],
            "--samples takes the place of --input and --output-dir",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(runner, args, message):
    r = run(runner, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_help(runner):
    r = run(runner, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: edgecap_runner --model PATH")


NPY_ROUNDTRIP = r"""
#include <cstdio>
#include "npy.h"
int main(int argc, char** argv) {  // reads argv[1], prints shape and dtype, writes argv[2]
  try {
    edgecap::Tensor t = edgecap::npy::read(argv[1]);
    std::printf("%s %s\n", edgecap::shape_str(t.shape).c_str(), edgecap::dtype_name(t.dtype));
    edgecap::npy::write(argv[2], t);
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
}
"""


@pytest.fixture(scope="module")
def npy_roundtrip(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("npy")
    (d / "roundtrip.cpp").write_text(NPY_ROUNDTRIP)
    exe = d / "roundtrip"
    subprocess.run(["g++", "-std=c++17", "-O1", "-I", RUNNER_SRC, d / "roundtrip.cpp", "-o", exe], check=True)
    return exe


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_npy_roundtrip(npy_roundtrip, tmp_path, version):
    rng = np.random.default_rng(0)
    arrays = {
        "1x243x17x2 float32": rng.standard_normal((1, 243, 17, 2)).astype(np.float32),
        "3 int32": np.array([1, -2, 3], np.int32),
        "2x0 int64": np.zeros((2, 0), np.int64),
        "4x5 uint8": rng.integers(0, 256, (4, 5)).astype(np.uint8),
        "2x3 bool": rng.random((2, 3)) > 0.5,
        "scalar float32": np.array(1.5, np.float32),
    }
    for expected, a in arrays.items():
        src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
        with open(src, "wb") as f:
            np.lib.format.write_array(f, a, version=version)
        r = subprocess.run([npy_roundtrip, src, dst], check=False, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == expected, r.stdout
        back = np.load(dst)
        assert back.dtype == a.dtype and back.shape == a.shape and np.array_equal(back, a)
        assert (dst.stat().st_size - a.nbytes) % 64 == 0  # data starts 64-byte aligned


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros(3, np.float64), "unsupported dtype '<f8'"),
        (np.zeros(3, ">f4"), "unsupported dtype '>f4'"),
        (np.asfortranarray(np.zeros((2, 3), np.float32)), "Fortran-order"),
    ],
)
def test_npy_rejects(npy_roundtrip, tmp_path, array, message):
    np.save(tmp_path / "in.npy", array)
    r = subprocess.run(
        [npy_roundtrip, tmp_path / "in.npy", tmp_path / "out.npy"], check=False, capture_output=True, text=True
    )
    assert r.returncode == 1 and message in r.stdout, r.stdout


def test_npy_rejects_truncated_data(npy_roundtrip, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, np.zeros((4, 4), np.float32))
    src.write_bytes(src.read_bytes()[:-4])
    r = subprocess.run([npy_roundtrip, src, tmp_path / "out.npy"], check=False, capture_output=True, text=True)
    assert r.returncode == 1 and "needs 64" in r.stdout, r.stdout
