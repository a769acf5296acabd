"""parts.json: each part's inputs, outputs, shapes and precision; the whole model's inputs."""

import numpy as np
import torch

from edgecap.core.parts import Part, parts_spec


class Double(torch.nn.Module):
    def forward(self, x):
        return 2 * x


class AddOne(torch.nn.Module):
    def forward(self, y):
        return y + 1


def test_spec_records_the_whole_inputs_and_each_parts_precision():
    parts = [Part("net", Double(), ["image"], ["feature"]),
             Part("solve", AddOne(), ["feature"], ["answer"], float_only=True)]
    examples = {"net": {"image": np.ones((1, 3), np.float32)}, "solve": {"feature": np.ones((1, 3), np.float32)}}
    spec = parts_spec("parts", "onnx", parts, ["answer"], examples, ".onnx", inputs=["image", "calibration"],
                      precision="int8")
    assert spec["inputs"] == ["image", "calibration"] and spec["outputs"] == ["answer"]
    assert [(p["name"], p["precision"], p["file"]) for p in spec["parts"]] == [("net", "int8", "net.onnx"),
                                                                               ("solve", "fp32", "solve.onnx")]
    assert spec["parts"][1]["output_shapes"] == {"answer": [1, 3]}
    assert parts_spec("parts", "onnx", parts, ["answer"], examples)["inputs"] == ["image"]  # default: the first part's
