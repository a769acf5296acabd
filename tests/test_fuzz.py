"""Fuzzing every kind of input edgecap reads: keypoint .npy files, named-array .npz files, weights,
run specs, manifests, artifact files of each format, images and DensePose-COCO JSON.

Each case mutates a valid file (truncation, byte flips, insertions, another kind of file, empty)
or its content (dtype, shape, NaN/inf, huge and zero-sized arrays, JSON values of the wrong
type) and runs the real entry point. Every case must end in a clear EdgecapError (one line) or a
correct result; anything else (a traceback, a partial output file) fails with the case named.
281 cases run by default; `pytest -m slow tests/test_fuzz.py` runs 2,810.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecap import EdgecapError
from edgecap.cli import main

DEFAULT, SLOW = 1, 10  # cases per kind = base count x this


# -- mutations --------------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.integers(7)
    n = len(data)
    if kind == 0 or n == 0:
        return "empty", b""
    if kind == 1:
        k = int(rng.integers(0, n))
        return f"truncated at {k}", data[:k]
    if kind == 2:
        buf = bytearray(data)
        for i in rng.integers(0, n, size=int(rng.integers(1, 9))):
            buf[i] = int(rng.integers(256))
        return "bytes flipped", bytes(buf)
    if kind == 3:
        k = int(rng.integers(0, n))
        return f"garbage inserted at {k}", data[:k] + rng.bytes(int(rng.integers(1, 64))) + data[k:]
    if kind == 4:
        a, b = sorted(int(x) for x in rng.integers(0, n, size=2))
        return f"bytes {a}:{b} removed", data[:a] + data[b:]
    if kind == 5:
        return "random bytes", rng.bytes(int(rng.integers(1, 4096)))
    return "header only", data[: min(n, 16)]


def mutate_json(obj, rng: np.random.Generator):
    """A copy of a JSON value with one value somewhere replaced by one of another type (or removed)."""
    weird = [None, -1, 0, 1e308, float("nan"), "x", "", [], {}, [[1]], True, 2**63, {"a": [None]}]
    obj = json.loads(json.dumps(obj))
    path, node = [], obj
    for _ in range(int(rng.integers(1, 6))):
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        key = keys[int(rng.integers(len(keys)))]
        if not isinstance(node[key], (dict, list)) or rng.random() < 0.3:
            if rng.random() < 0.2 and isinstance(node, dict):
                del node[key]
                return f"{'.'.join(map(str, path + [key]))} removed", obj
            node[key] = weird[int(rng.integers(len(weird)))]
            return f"{'.'.join(map(str, path + [key]))} = {node[key]!r}", obj
        path.append(key)
        node = node[key]
    return "unchanged", obj


def mutate_array(a: np.ndarray, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    kind = rng.integers(9)
    if kind == 0:
        dtype = [np.int32, np.float16, np.float64, np.bool_, np.uint8, np.complex64][int(rng.integers(6))]
        return f"dtype {np.dtype(dtype)}", a.astype(dtype)
    if kind == 1:
        shape = tuple(int(s) for s in rng.integers(0, 5, size=int(rng.integers(0, 5))))
        return f"shape {shape}", np.zeros(shape, np.float32)
    if kind == 2:
        b = a.copy().astype(np.float32)
        b.flat[int(rng.integers(b.size))] = [np.nan, np.inf, -np.inf][int(rng.integers(3))]
        return "a NaN/inf value", b
    if kind == 3:
        return "huge values", np.full_like(a, 3e38, dtype=np.float32)
    if kind == 4:
        return "zero-sized first axis", a[:0]
    if kind == 5:
        return "one axis dropped", a.reshape(-1, *a.shape[2:]) if a.ndim > 1 else a[None]
    if kind == 6:
        return "strings", np.full(a.shape, "7")
    if kind == 7:
        return "extra axis", a[None]
    return "negative values", -np.abs(a)


def expect_clean(fn, case: str, outputs: list[Path] = ()):
    """Run one case: an EdgecapError or a result; never another exception or a partial output."""
    try:
        return fn()
    except EdgecapError as e:
        message = str(e)
        assert message and "Traceback" not in message, f"{case}: unclear error {message!r}"
        for out in outputs:
            assert not Path(out).exists(), f"{case}: failed, yet left {out}"
        return None
    except Exception as e:  # noqa: BLE001 - this is what the fuzzer looks for
        raise AssertionError(f"{case}: {type(e).__name__}: {e}") from e


def cli_case(argv: list, case: str, outputs: list[Path] = (), capsys=None) -> int:
    """`edgecap ARGV` in-process: exit 0, 1 or 2 with a one-line error, never a traceback."""
    for out in outputs:
        Path(out).unlink(missing_ok=True)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse
        code = e.code
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{case}: {type(e).__name__}: {e}") from e
    assert code in (0, 1, 2), f"{case}: exit code {code}"
    if capsys is not None:
        err = capsys.readouterr().err
        assert code == 0 or err.startswith("edgecap "), f"{case}: {err!r}"
        assert "Traceback" not in err, f"{case}: {err}"
    if code != 0:
        for out in outputs:
            assert not Path(out).exists(), f"{case}: failed, yet left {out}"
    return code


# -- the kinds of input -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_run(tiny_run, tmp_path_factory):
    """The tiny lifting run with an fp32 ONNX artifact; each case works on copies of its files."""
    run = tmp_path_factory.mktemp("fuzz") / "run"
    shutil.copytree(tiny_run, run)
    from edgecap.stages.export import export

    export(run, formats=["onnx", "tflite", "executorch"], precisions=["fp32"], progress=False)
    return run


def keypoint_cases(run: Path, tmp: Path, scale: int, capsys):
    rng = np.random.default_rng(1)
    valid = np.random.default_rng(0).uniform(0, 400, (12, 17, 3)).astype(np.float32)
    valid[..., 2] = 1.0
    np.save(tmp / "valid.npy", valid)
    raw = (tmp / "valid.npy").read_bytes()
    out = tmp / "out.npy"
    for i in range(60 * scale):
        if i % 2:
            case, data = mutate_bytes(raw, rng)
            (tmp / "in.npy").write_bytes(data)
        else:
            case, arr = mutate_array(valid, rng)
            with open(tmp / "in.npy", "wb") as f:
                np.save(f, arr)
        code = cli_case(["predict", run, "--input", tmp / "in.npy", "--output", out], f"keypoints: {case}", [out],
                        capsys)
        if code == 0:  # a correct result: one finite 3D pose per frame
            poses = np.load(out)
            frames = np.load(tmp / "in.npy").shape[0]
            assert poses.shape == (frames, 17, 3) and np.isfinite(poses).all(), f"keypoints: {case}: {poses.shape}"


def npz_cases(run: Path, tmp: Path, scale: int, capsys):
    rng = np.random.default_rng(2)
    model = run / "export" / "lifting_fp32.onnx"
    valid = {"keypoints_2d": np.random.default_rng(0).uniform(0, 1, (1, 9, 17, 3)).astype(np.float32)}
    np.savez(tmp / "valid.npz", **valid)
    raw = (tmp / "valid.npz").read_bytes()
    out = tmp / "out.npz"
    for i in range(40 * scale):
        if i % 2:
            case, data = mutate_bytes(raw, rng)
            (tmp / "in.npz").write_bytes(data)
        else:
            case, arr = mutate_array(valid["keypoints_2d"], rng)
            name = "keypoints_2d" if rng.random() < 0.8 else "other"
            with open(tmp / "in.npz", "wb") as f:
                np.savez(f, **{name: arr})
        code = cli_case(["predict", "--artifact", model, "--input", tmp / "in.npz", "--output", out],
                        f"npz: {case}", [out], capsys)
        if code == 0:
            with np.load(out) as got:
                assert got["joints_3d_mm"].shape == (1, 17, 3) and np.isfinite(got["joints_3d_mm"]).all(), case


def run_file_cases(run: Path, tmp: Path, scale: int, name: str, argv, count: int, capsys, seed: int, as_json: bool):
    """Mutations of one file of a run (weights, run spec, manifest): its bytes, or (`as_json`) its
    JSON values."""
    rng = np.random.default_rng(seed)
    raw = (run / name).read_bytes()
    copy = tmp / f"case-{seed}"
    for _ in range(count * scale):
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("checkpoints", "logs"))
        if as_json:
            case, obj = mutate_json(json.loads(raw), rng)
            data = json.dumps(obj).encode()
        else:
            case, data = mutate_bytes(raw, rng)
        (copy / name).write_bytes(data)
        cli_case(argv(copy), f"{name}: {case}", capsys=capsys)


def artifact_cases(run: Path, tmp: Path, scale: int, capsys):
    """Byte mutations of each format's artifact, opened as a model from elsewhere (no sha256 check)."""
    rng = np.random.default_rng(3)
    np.savez(tmp / "kp.npz", keypoints_2d=np.zeros((1, 9, 17, 3), np.float32))
    for suffix in (".onnx", ".tflite", ".pte"):
        raw = (run / "export" / f"lifting_fp32{suffix}").read_bytes()
        for _ in range(8 * scale):
            case, data = mutate_bytes(raw, rng)
            model = tmp / f"m{suffix}"
            model.write_bytes(data)
            cli_case(["predict", "--artifact", model, "--input", tmp / "kp.npz", "--output", tmp / "o.npz"],
                     f"{suffix}: {case}", [tmp / "o.npz"], capsys)


def image_cases(tmp: Path, scale: int):
    """Mutated PNG and JPEG files through the DensePose app's image path (read, check, letterbox)."""
    from PIL import Image

    from edgecap.models.parsing_rcnn.app import check_image, letterbox, read_image

    rng = np.random.default_rng(4)
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG"):
        Image.fromarray(pixels).save(tmp / f"valid.{fmt.lower()}", format=fmt)
        raw = (tmp / f"valid.{fmt.lower()}").read_bytes()
        for _ in range(20 * scale):
            case, data = mutate_bytes(raw, rng)
            (tmp / "img").write_bytes(data)

            def run_one():
                image = check_image(read_image(tmp / "img"), "fuzz")
                x, scale_ = letterbox(image, 64)
                assert x.shape == (1, 3, 64, 64) and np.isfinite(x).all() and scale_ > 0
            expect_clean(run_one, f"{fmt}: {case}")


def densepose_json_cases(tmp: Path, scale: int):
    """Mutated DensePose-COCO annotation files through the real loader and one sample."""
    from edgecap.data.densepose_coco import DensePoseCOCO
    from edgecap.data.synthetic_densepose import write_synthetic_densepose

    root = tmp / "dp"
    write_synthetic_densepose(root, 2, "val", seed=0, image_size=(64, 64), max_people=2, points=(5, 8))
    original = json.loads((root / "densepose_val.json").read_text())
    rng = np.random.default_rng(5)
    for i in range(30 * scale):
        if i % 3 == 0:
            case, data = mutate_bytes(json.dumps(original).encode(), rng)
            (tmp / "ann.json").write_bytes(data)
        else:
            case, obj = mutate_json(original, rng)
            (tmp / "ann.json").write_text(json.dumps(obj))

        def load_all():
            ds = DensePoseCOCO(tmp / "ann.json", root / "val")
            for k in range(len(ds)):
                ds[k]
        expect_clean(load_all, f"densepose json: {case}")


def run_all_kinds(fuzz_run, tmp_path, scale, capsys):
    keypoint_cases(fuzz_run, tmp_path, scale, capsys)
    npz_cases(fuzz_run, tmp_path, scale, capsys)
    evaluate = lambda r: ["evaluate", r, "-q"]  # noqa: E731
    run_file_cases(fuzz_run, tmp_path, scale, "model.safetensors", evaluate, 12, capsys, 10, as_json=False)
    run_file_cases(fuzz_run, tmp_path, scale, "run.json", evaluate, 10, capsys, 11, as_json=False)
    run_file_cases(fuzz_run, tmp_path, scale, "run.json", evaluate, 25, capsys, 12, as_json=True)
    manifest = "export/manifest.json"
    predict = lambda r: ["predict", r, "--artifact", "lifting_fp32.onnx", "--input", r / "kp.npy",  # noqa: E731
                         "--output", r / "o.npy"]
    np.save(fuzz_run / "kp.npy", np.zeros((10, 17, 3), np.float32))
    run_file_cases(fuzz_run, tmp_path, scale, manifest, predict, 10, capsys, 13, as_json=False)
    run_file_cases(fuzz_run, tmp_path, scale, manifest, predict, 30, capsys, 14, as_json=True)
    artifact_cases(fuzz_run, tmp_path, scale, capsys)
    image_cases(tmp_path, scale)
    densepose_json_cases(tmp_path, scale)


def test_fuzz_inputs(fuzz_run, tmp_path, capsys):
    """281 cases over every input kind."""
    run_all_kinds(fuzz_run, tmp_path, DEFAULT, capsys)


@pytest.mark.slow
def test_fuzz_inputs_thousands(fuzz_run, tmp_path, capsys):
    """2,810 cases: the same kinds, ten times as many mutations."""
    run_all_kinds(fuzz_run, tmp_path, SLOW, capsys)
