"""`edgecap bench --artifact FILE` and `edgecap predict --artifact FILE` on models edgecap did not
make: built here with plain torch and the converters, no edgecap metadata, and a .tflite without
any SignatureDef (as many published models are)."""

import json

import numpy as np
import pytest
import torch

from edgecap.cli import main


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


@pytest.fixture(scope="module")
def foreign_models(tmp_path_factory):
    import litert_torch
    from ai_edge_litert.tools import flatbuffer_utils
    from executorch.exir import to_edge

    out = tmp_path_factory.mktemp("foreign")
    torch.manual_seed(0)
    model, args = TinyNet().eval(), (torch.randn(1, 3, 16, 16),)
    with torch.no_grad():
        torch.onnx.export(model, args, str(out / "tiny.onnx"), dynamo=True, input_names=["pixels"],
                          output_names=["logits"], verbose=False)
    edge = litert_torch.convert(model, args)
    (out / "tiny.tflite").write_bytes(edge.model_content())
    fb = flatbuffer_utils.read_model_from_bytearray(edge.model_content())
    fb.signatureDefs = []
    (out / "tiny_nosig.tflite").write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(fb)))
    program = to_edge(torch.export.export(model, args)).to_executorch()
    (out / "tiny.pte").write_bytes(program.buffer)
    with torch.no_grad():
        reference = model(*args).numpy()
    return out, args[0].numpy(), reference


@pytest.mark.parametrize("name", ["tiny.onnx", "tiny.tflite", "tiny_nosig.tflite", "tiny.pte"])
def test_bench_a_model_edgecap_did_not_make(foreign_models, name, capsys):
    out, _, _ = foreign_models
    result = out / f"{name}.json"
    code = main(["bench", "--artifact", str(out / name), "--threads", "1", "--runs", "5", "-q", "--out", str(result)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(result.read_text())
    (row,) = report["rows"]
    assert row["name"] == name and row["threads"] == 1 and row["runs"] >= 5 and row["p50_ms"] > 0
    assert row["size_bytes"] == (out / name).stat().st_size and report["target"] == "host"
    assert "random" in report["inputs"] and name in capsys.readouterr().out


@pytest.mark.parametrize("name", ["tiny.onnx", "tiny.tflite", "tiny_nosig.tflite", "tiny.pte"])
def test_predict_a_model_edgecap_did_not_make(foreign_models, name, tmp_path):
    from edgecap.runs import open_artifact

    out, x, reference = foreign_models
    (input_name,) = open_artifact(out / name).input_names
    np.savez(tmp_path / "in.npz", **{input_name: x})
    assert main(["predict", "--artifact", str(out / name), "--input", str(tmp_path / "in.npz"),
                 "--output", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as got:
        (value,) = [got[k] for k in got.files]
    np.testing.assert_allclose(value, reference, atol=1e-4)


def test_bench_files_refuses_inputs_of_the_wrong_shape(foreign_models, tmp_path, capsys):
    out, x, _ = foreign_models
    np.savez(tmp_path / "bad.npz", pixels=x[:, :, :8])
    assert main(["bench", "--artifact", str(out / "tiny.onnx"), "--inputs", str(tmp_path / "bad.npz"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "pixels" in err and "(1, 3, 8, 16)" in err and "Traceback" not in err


def test_noise_warns_on_a_busy_machine_and_an_unstable_row():
    from edgecap.stages.bench import noise

    idle = {"cores": 2, "load_average_1m": 1.9, "cpu_busy_percent": 3.0}  # a high load left by the last stage
    steady = [{"name": "a.onnx", "threads": 1, "round_spread": 0.05}]
    assert noise(idle, idle, steady)["warnings"] == []
    busy = noise(idle, {**idle, "cpu_busy_percent": 95.0}, steady)
    assert busy["cpu_busy_percent_after"] == 95.0 and "busy (95% of 2 cores" in busy["warnings"][0]
    no_proc = {"cores": 2, "load_average_1m": 3.5, "cpu_busy_percent": None}  # no /proc/stat: the load average
    assert "busy (load 3.5 on 2 cores)" in noise(no_proc, no_proc, steady)["warnings"][0]
    shaky = noise(idle, idle, steady + [{"name": "b.tflite", "threads": 2, "round_spread": 0.6}])
    assert shaky["max_round_spread"] == 0.6 and "b.tflite at 2 thread(s) moved by 60%" in shaky["warnings"][0]
