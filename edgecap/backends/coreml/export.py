"""Core ML export: an ML Program `.mlpackage` (iOS 17+) from torch.export.

fp32: fp32 compute. int8: weight-only int8 (linear symmetric, per-channel) with fp16
compute, W8A16; int8 activations need calibration through the Core ML runtime, which
exists only on macOS. `req.float_modules` keep fp32 compute and float weights in int8:
their pixel-space sums overflow fp16 (max 65504).

Core ML cannot execute off macOS, so on Linux the artifact is converted and its saved
spec checked (names, shapes, dtypes, metadata), not run.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import coremltools as ct
import coremltools.optimize.coreml as cto
import numpy as np
import torch
from coremltools.converters.mil.mil.scope import ScopeSource
from coremltools.proto import FeatureTypes_pb2, MIL_pb2

from edgecap import EdgecapError, __version__
from edgecap.backends.base import ArtifactRecord, ExportRequest
from edgecap.quantization.pt2e import node_in_modules

NOT_EXECUTED_NOTE = (
    "Core ML runs only on macOS; converted and checked on Linux (spec loads, metadata present, "
    "inputs/outputs named) but not executed"
)
_WEIGHT_THRESHOLD = 512  # weights with fewer elements (biases, small buffers) stay float


def export_coreml(req: ExportRequest, out: Path) -> ArtifactRecord:
    """Convert `req.model` to an `.mlpackage` directory at exactly `out` and check its spec."""
    out = Path(out)
    model = req.model.eval()
    args = req.example_args()
    what = f"Core ML {req.precision} conversion of {type(model).__name__}"
    start = time.perf_counter()
    try:
        ml = _convert(req, model, args)
    except EdgecapError:
        raise
    except Exception as e:  # coremltools names the fx node it rejects, e.g. "and_1, kind __and__" (item 2)
        raise EdgecapError(f"{what} failed: {type(e).__name__}: {e}") from e
    convert_s = time.perf_counter() - start

    spec = ml.get_spec()
    # torch.export names inputs after forward()'s parameters; use the request's names.
    for old, new in zip([f.name for f in spec.description.input], req.example_inputs):
        if old != new:
            ct.utils.rename_feature(spec, old, new)
    if req.precision == "int8" and not _mil_op_stats(spec)["int8_weights"]:
        raise EdgecapError(
            f"{what}: no weight was quantized (each has < {_WEIGHT_THRESHOLD} elements "
            f"or is in float_modules={req.float_modules})"
        )
    ml = ct.models.MLModel(spec, weights_dir=ml.weights_dir, skip_model_load=True)
    metadata = {**req.metadata, "input_names": ",".join(req.example_inputs), "output_names": ",".join(req.output_names)}
    for key, value in metadata.items():
        ml.user_defined_metadata[key] = str(value)
    ml.author = f"edgecap {__version__}"
    ml.version = __version__
    ml.short_description = (
        f"{req.metadata.get('model', type(model).__name__)} ({req.precision}): "
        f"{', '.join(req.example_inputs)} -> {', '.join(req.output_names)}"
    )
    _save(ml, out)

    with torch.no_grad():
        ref = model(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    details = _check_saved(out, req, [tuple(r.shape) for r in ref], metadata)
    runnable = platform.system() == "Darwin"
    notes = [] if runnable else [NOT_EXECUTED_NOTE]
    if req.precision == "fp32":
        scheme = "Core ML ML Program, fp32 compute (iOS17)"
    else:
        scheme = "Core ML ML Program: W8A16/fp16 compute; weight-only int8 (linear symmetric, per-channel)"
        notes.append("int8 activations need calibration on macOS; this artifact quantizes weights only")
        if req.float_modules:
            notes.append(f"fp32 compute and float weights for: {', '.join(req.float_modules)}")
    return ArtifactRecord(
        format="coreml",
        precision=req.precision,
        scheme=scheme,
        runnable_here=runnable,
        notes=notes,
        details={"convert_s": round(convert_s, 2), **details},
    )


def _convert(req: ExportRequest, model: torch.nn.Module, args: tuple) -> ct.models.MLModel:
    ep = torch.export.export(model, args).run_decompositions({})
    # Core ML keeps an fx node's meta["debug_handle"] as a scope on every MIL op made from it,
    # through all passes; tagging nodes lets the fp16 pass find the float modules' ops.
    float_handles = set()
    for i, node in enumerate(ep.graph.nodes):
        node.meta["debug_handle"] = i
        if node_in_modules(node, req.float_modules):
            float_handles.add(i)
    if req.precision == "fp32":
        precision = ct.precision.FLOAT32
    else:
        precision = ct.transform.FP16ComputePrecision(
            op_selector=lambda op: not float_handles.intersection(op.scopes.get(ScopeSource.EXIR_DEBUG_HANDLE, []))
        )
    ml = ct.convert(
        ep,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=precision,
        outputs=[ct.TensorType(name=n, dtype=np.float32) for n in req.output_names],
    )
    if req.precision == "int8":
        # Weights become const ops named after their export placeholders (p_core_head_weight, ...).
        sig = ep.graph_signature
        fqns = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
        keep_float = [name for name, fqn in fqns.items() if any(fqn.startswith(m + ".") for m in req.float_modules)]
        config = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=_WEIGHT_THRESHOLD
            ),
            op_name_configs={name: None for name in keep_float},
        )
        ml = cto.linear_quantize_weights(ml, config=config)
    return ml


def _save(ml: ct.models.MLModel, out: Path) -> None:
    """Save to exactly `out`: coremltools insists on a `.mlpackage` suffix, the caller may not."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        staged = Path(tmp) / "model.mlpackage"
        ml.save(str(staged))
        if out.is_dir():
            shutil.rmtree(out)
        staged.rename(out)


def _check_saved(path: Path, req: ExportRequest, output_shapes: list[tuple], metadata: dict[str, str]) -> dict:
    """Reload the saved spec; check names, shapes, float32 I/O and metadata; count its MIL ops."""
    spec = ct.utils.load_spec(str(path))
    if spec.WhichOneof("Type") != "mlProgram":
        raise EdgecapError(f"{path}: expected an ML Program, found {spec.WhichOneof('Type')}")
    inputs = [(n, tuple(a.shape)) for n, a in req.example_inputs.items()]
    outputs = list(zip(req.output_names, output_shapes))
    described = (("input", spec.description.input, inputs), ("output", spec.description.output, outputs))
    for side, features, wanted in described:
        got = [(f.name, tuple(f.type.multiArrayType.shape)) for f in features]
        if got != wanted:
            raise EdgecapError(f"{path}: {side}s are {got}, expected {wanted}")
        for f in features:
            if f.type.multiArrayType.dataType != FeatureTypes_pb2.ArrayFeatureType.FLOAT32:
                raise EdgecapError(f"{path}: {side} {f.name!r} is not float32")
    stored = dict(spec.description.metadata.userDefined)
    lost = sorted(k for k, v in metadata.items() if stored.get(k) != str(v))
    if lost:
        raise EdgecapError(f"{path}: metadata keys {lost} did not survive saving")
    shapes = {side: {n: list(s) for n, s in named} for side, named in (("inputs", inputs), ("outputs", outputs))}
    return {**_mil_op_stats(spec), **shapes}


def _mil_op_stats(spec) -> dict:
    """Non-const MIL op counts, int8 weights (constexpr ops) and op output dtypes."""
    ops, dtypes = Counter(), Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                if op.type == "const":
                    continue
                ops[op.type] += 1
                if not op.type.startswith("constexpr_") and op.outputs and op.outputs[0].type.HasField("tensorType"):
                    dtypes[MIL_pb2.DataType.Name(op.outputs[0].type.tensorType.dataType)] += 1
    return {
        "ops": dict(sorted(ops.items())),
        "op_total": sum(ops.values()),
        "int8_weights": sum(n for t, n in ops.items() if t.startswith("constexpr_")),
        "compute_dtypes": dict(sorted(dtypes.items())),
    }
