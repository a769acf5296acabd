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
    assert code == 2 and "run spec not found" in err and "run.json" in err


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
    assert code == 2 and "corrupt" in err
    assert not any((tmp_path / f"o{i}.npy").exists() for i in (1, 2, 3))


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
