"""Every registered family through the same checks: the contract's facts, build, input spec, export
form, ONNX fp32 export matching eager on the family's real example inputs, and the metadata the
artifact carries. A new family in edgecap.models.FAMILIES is checked without a line here."""

import numpy as np
import pytest
import torch

from edgecap import api
from edgecap.models import FAMILIES, get_family
from edgecap.models.contract import ModelFamily


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_run(request):
    family = get_family(request.param)
    run = api.config(request.param, list(family.facts.quick_overrides))
    torch.manual_seed(0)
    return family, run


def test_contract_facts(family_run):
    family, run = family_run
    assert isinstance(family, ModelFamily) and family.name in FAMILIES
    assert set(family.facts.tolerances) == {"fp32", "int8"}
    for rule in family.facts.tolerances.values():
        assert set(rule["metrics"]) <= set(family.facts.metrics)
    assert "whole" in family.facts.layouts
    assert set(family.facts.default_layouts) <= set(family.facts.layouts)


def test_default_layouts_are_what_export_picks():
    from edgecap.models.contract import FamilyFacts
    from edgecap.stages.export import check_options

    assert check_options(get_family("triangulation"), ["onnx"], None, None)[2] == ["whole", "parts"]
    assert check_options(get_family("lifting"), ["onnx"], None, None)[2] == ["whole"]
    with pytest.raises(Exception, match="default_layouts"):
        FamilyFacts(name="x", run_config=object, metrics=("m",), better="lower", tolerances={},
                    default_layouts=("parts",))


def test_build_spec_and_export_form_agree(family_run):
    family, run = family_run
    model = family.build(run.model).eval()
    data = family.load_data(run, "val")
    (example,) = family.calibration_inputs(data, 1, seed=0)
    spec = family.input_spec(run.model)
    assert list(example) == list(spec)
    for name, s in spec.items():
        assert example[name].shape == s.shape and example[name].dtype == np.float32
    args = [torch.from_numpy(example[n]) for n in spec]
    with torch.no_grad():
        eager, form = model(*args), family.export_form(model)(*args)
    eager = eager if isinstance(eager, (tuple, list)) else (eager,)
    form = form if isinstance(form, (tuple, list)) else (form,)
    assert len(eager) == len(form) == len(family.output_names(run.model))
    for a, b in zip(eager, form):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)


def test_onnx_fp32_matches_eager_and_carries_metadata(family_run, tmp_path):
    from edgecap.backends.base import ExportRequest
    from edgecap.backends.onnx.export import export_onnx
    from edgecap.backends.onnx.runner import OnnxRunner
    from edgecap.core.runner import TorchRunner

    family, run = family_run
    form = family.export_form(family.build(run.model).eval())
    inputs = family.calibration_inputs(family.load_data(run, "val"), 2, seed=0)
    names, outs = list(family.input_spec(run.model)), family.output_names(run.model)
    meta = family.metadata(run.model)
    export_onnx(ExportRequest(form, inputs[0], outs, "fp32", meta), tmp_path / "m.onnx")
    runner, eager = OnnxRunner(tmp_path / "m.onnx"), TorchRunner(form, names, outs)
    assert runner.input_names == names and runner.output_names == outs
    assert runner.metadata() == meta and meta["model"] == family.name
    parity = family.output_parity((runner.run(x), eager.run(x)) for x in inputs)
    assert parity["samples"] == 2
    if "cosine" in parity:
        assert parity["cosine"] > 0.99999
    else:
        assert parity["recall"] == 1.0 and parity["label_agreement"] > 0.99
