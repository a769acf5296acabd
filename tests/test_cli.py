"""Every bad input gets a clear message and a non-zero exit, and nothing half-written."""

import json
import shutil

import numpy as np
import pytest

from edgecap.cli import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_help_on_every_command(capsys):
    for cmd in ["train", "quantize", "export", "validate", "bench", "report", "pipeline", "predict"]:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "usage: edgecap " + cmd in capsys.readouterr().out


def test_unknown_model(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "smpl", "--out", tmp_path / "r")
    assert code == 2 and "unknown model 'smpl'" in err
    assert not (tmp_path / "r").exists()


def test_unknown_format(capsys, tiny_run):
    code, err = run_cli(capsys, "export", tiny_run, "--formats", "onnx,caffe2", "-q")
    assert code == 2 and "unknown format 'caffe2'" in err


def test_unknown_config_key(capsys, tmp_path):
    code, err = run_cli(capsys, "train", "lifting", "--out", tmp_path / "r", "--set", "model.depth=3")
    assert code == 2 and "unknown config key 'model.depth'" in err


def test_run_directory_of_another_model(capsys, tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"family": "parsing_rcnn", "config": {}}))
    code, err = run_cli(capsys, "train", "lifting", "--out", tmp_path)
    assert code == 2 and "holds a 'parsing_rcnn' run, not 'lifting'" in err


def test_missing_run(capsys, tmp_path):
    code, err = run_cli(capsys, "quantize", tmp_path / "nowhere")
    assert code == 2 and f"run directory {tmp_path / 'nowhere'} does not exist" in err and "edgecap train" in err
    code, err = run_cli(capsys, "export", tmp_path)
    assert code == 2 and "is not a run directory: it has no run.json" in err


def test_missing_stage_output_names_the_command_that_makes_it(capsys, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    code, err = run_cli(capsys, "validate", run)
    assert code == 2 and "export/manifest.json not found: run `edgecap export" in err


def _imports_after(argv: list[str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether torch got imported) of `edgecap ARGV` in a fresh process."""
    import subprocess
    import sys

    code = ("import sys; from edgecap.cli import main; rc = main(sys.argv[1:]); "
            "print('TORCH' if 'torch' in sys.modules else 'LIGHT'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    return proc.returncode, proc.stderr, proc.stdout.strip().endswith("TORCH")


def test_argument_errors_come_before_any_heavy_import(tmp_path):
    """A typo or a missing run is reported before torch or a converter is imported (how fast that
    is, is measured in the README's first-run notes, not asserted here)."""
    for argv, message in [
        (["export", str(tmp_path / "nowhere")], "does not exist"),
        (["pipeline", "lifting", "--out", str(tmp_path / "r"), "--formats", "tflight"], "unknown format 'tflight'"),
        (["bench", "--artifact", str(tmp_path / "none.onnx")], "model file not found"),
        (["pipeline", "lifting", "--threads", "0"], "--threads must be positive"),
    ]:
        code, err, heavy = _imports_after(argv)
        assert code == 2 and message in err and not heavy, (argv, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_pipeline_checks_every_option_before_training(capsys, tmp_path):
    code, err = run_cli(capsys, "pipeline", "lifting", "--out", tmp_path / "r", "--layouts", "whole,parts")
    assert code == 2 and "lifting has no layout 'parts'" in err and not (tmp_path / "r").exists()


def test_set_leaves_the_model_positional_alone():
    from edgecap.cli import build_parser, split_set_values

    a = build_parser().parse_args(split_set_values(["train", "--set", "train.steps=5", "model.window=3", "lifting"]))
    assert a.model == "lifting" and a.set == ["train.steps=5", "model.window=3"]
    a = build_parser().parse_args(split_set_values(["pipeline", "lifting", "--set", "a=1", "--out", "x", "--set", "b=2"]))
    assert a.model == "lifting" and a.set == ["a=1", "b=2"] and a.out == "x"


def test_corrupt_weights(capsys, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.safetensors").write_bytes(b"not a safetensors file")
    code, err = run_cli(capsys, "quantize", run, "-q")
    assert code == 2 and "model.safetensors is corrupt or not safetensors" in err
    assert not (run / "quantize" / "quant.json").exists()


def test_corrupt_run_spec(capsys, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "run.json").write_text("{truncated")
    code, err = run_cli(capsys, "quantize", run)
    assert code == 2 and "run.json is corrupt" in err


def test_predict_bad_inputs(capsys, tiny_run, tmp_path):
    kp = np.zeros((12, 17, 3), np.float32)
    np.save(tmp_path / "ok.npy", kp)
    assert run_cli(capsys, "predict", tiny_run, "--input", tmp_path / "ok.npy", "--output", tmp_path / "out.npy")[0] == 0
    assert np.load(tmp_path / "out.npy").shape == (12, 17, 3)

    np.save(tmp_path / "shape.npy", np.zeros((12, 16, 3), np.float32))
    code, err = run_cli(capsys, "predict", tiny_run, "--input", tmp_path / "shape.npy", "--output", tmp_path / "o1.npy")
    assert code == 2 and "shape (12, 16, 3), expected (frames, 17, 3)" in err

    kp[4, 2, 1] = np.nan
    np.save(tmp_path / "nan.npy", kp)
    code, err = run_cli(capsys, "predict", tiny_run, "--input", tmp_path / "nan.npy", "--output", tmp_path / "o2.npy")
    assert code == 2 and "NaN" in err and "validity 0" in err

    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    code, err = run_cli(capsys, "predict", tiny_run, "--input", tmp_path / "bad.npy", "--output", tmp_path / "o3.npy")
    assert code == 2 and "truncated" in err
    assert not any((tmp_path / f"o{i}.npy").exists() for i in (1, 2, 3))


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    ("zero_frames", "holds no frames"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "is not a .npy array file (it looks like a PNG image)"),
    ("nan_at_frame_7", "first at frame 7, joint 3, channel 0 (x_px)"),
    ("object_array", "of plain numeric data"),
    ("strings", "dtype <U1, expected float32"),
])
def test_predict_input_files_that_used_to_raise_tracebacks(capsys, tiny_run, tmp_path, content, message):
    path = tmp_path / "in.npy"
    if content == "zero_frames":
        np.save(path, np.zeros((0, 17, 3), np.float32))
    elif content == "nan_at_frame_7":
        kp = np.zeros((9, 17, 3), np.float32)
        kp[7, 3, 0] = np.inf
        np.save(path, kp)
    elif content == "object_array":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif content == "strings":
        np.save(path, np.full((2, 17, 3), "a"))
    else:
        path.write_bytes(content)
    code, err = run_cli(capsys, "predict", tiny_run, "--input", path, "--output", tmp_path / "out.npy")
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out.npy").exists()


def test_evaluate_writes_metrics(capsys, tiny_run):
    assert main(["evaluate", str(tiny_run), "-q"]) == 0
    assert "mpjpe_mm" in capsys.readouterr().out
    report = json.loads((tiny_run / "evaluate.json").read_text())
    spec = json.loads((tiny_run / "model.json").read_text())
    assert report["val"]["mpjpe_mm"] == pytest.approx(spec["val"]["mpjpe_mm"], rel=1e-5)


def test_derive_keeps_weights_and_refuses_shape_changes(tiny_run, tmp_path, capsys):
    from safetensors.torch import load_file

    out = tmp_path / "derived"
    assert main(["derive", str(tiny_run), "--out", str(out), "--set", "data.val_sequences=3"]) == 0
    spec = json.loads((out / "run.json").read_text())
    assert spec["config"]["data"]["val_sequences"] == 3
    a, b = load_file(tiny_run / "model.safetensors"), load_file(out / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert json.loads((out / "model.json").read_text())["derived_from"]["overrides"] == ["data.val_sequences=3"]
    code = main(["derive", str(tiny_run), "--out", str(tmp_path / "bad"), "--set", "model.hidden=32"])
    assert code == 2 and "has shape" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_converter_output_goes_to_the_run_log_not_the_terminal(capfd, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["export", str(run), "--formats", "tflite", "--precisions", "fp32"]) == 0
    out, err = capfd.readouterr()
    log = (run / "logs" / "export.log").read_text()
    assert "[START] LiteRT-Torch Convert" in log  # litert-torch's step lines, captured at the fd level
    shown = out + err
    assert "lifting_fp32.tflite" in out and "export" in err  # the result table and edgecap's progress bar
    for noise in ("[START]", "[DONE]", "oneDNN", "absl", "XNNPACK delegate"):
        assert noise not in shown, noise


def test_a_failure_shows_the_tail_of_its_own_log(capsys, tiny_run, tmp_path, monkeypatch):
    import edgecap.stages.quantize as stage

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "logs").mkdir(exist_ok=True)
    (run / "logs" / "quantize.log").write_text("a line of an earlier command\n")

    def failing_quantize(*args, **kwargs):
        print("a line a library printed before the failure")
        raise stage.EdgecapError("the recipe could not be made")

    monkeypatch.setattr(stage, "quantize", failing_quantize)
    code, err = run_cli(capsys, "quantize", run, "-q")
    assert code == 2 and err.startswith("edgecap quantize: error: the recipe could not be made")
    assert f"last lines of {run / 'logs' / 'quantize.log'}" in err and "a library printed" in err
    assert "earlier command" not in err  # only this command's part of the log
