"""ONNX export: fp32 via the torch.export-based exporter, int8 via ORT static QDQ.

fp32: `torch.onnx.export(dynamo=True)` (the maintained exporter; the legacy TorchScript one
is deprecated). It also tags every node with the module path it came from
(`pkg.torch.onnx.name_scopes`), which is how `req.float_modules` are kept out of int8.

int8: fp32 model -> `quant_pre_process` -> `quantize_static` (QDQ, per-channel symmetric int8
weights, asymmetric int8 activations, percentile calibration on `req.calibration`). Only
weight-bearing ops (Conv, ConvTranspose, Gemm, MatMul with a constant B) are quantized, so
normalization arithmetic stays fp32; a ReLU/Clip right after one is folded into its output range,
as XNNPACK (the scheme QAT trains under) fuses them. On Parsing R-CNN (B) with QAT weights, 400
validation images, these two changes moved ONNX int8 from -0.6 to 0.0 GPSm AP points (README).
Note: ORT QDQ was slower than fp32 on this CPU in the export probe; it is the portable
int8 form, not the fast one.

Calibration: ranges clip at the 99.999th percentile of each activation's histogram. On Parsing
R-CNN (B) this kept GPSm AP within 0.6 points where MinMax lost 1.4: rare extreme activations
no longer stretch a tensor's int8 step. ORT's histogram calibrators hold every sample's
intermediate outputs until `collect_data` returns (over 24 GB for 64 images at 512), so the
samples go through in chunks (`CalibStridedMinMax`, which despite its name drives any
calibrator): each chunk is merged into the running histograms and freed.

`req.metadata` goes into the model's `metadata_props` (ORT: `custom_metadata_map`).
"""

from __future__ import annotations

import ast
import contextlib
import io
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import torch

from edgecap import EdgecapError
from edgecap.backends.base import ArtifactRecord, ExportRequest
from edgecap.core.arrays import Arrays

QUANT_OP_TYPES = ["Conv", "ConvTranspose", "Gemm", "MatMul"]  # ConvTranspose: per output channel (axis 1)
# Listed so ORT folds them into the quantized output of the Conv before them (QDQRemovableActivation):
# the Conv's output is then quantized after the ReLU, over its non-negative range, as XNNPACK's
# conv+relu fusion does. Left out, the Conv output was quantized before the ReLU, half its
# int8 levels spent on negatives the ReLU discards.
FOLDED_ACTIVATIONS = ["Relu", "Clip"]
_NAME_SCOPES = "pkg.torch.onnx.name_scopes"
CALIBRATION_PERCENTILE = 99.999
CALIBRATION = f"percentile {CALIBRATION_PERCENTILE}, asymmetric"  # as the manifest records it
CALIBRATION_CHUNK = 8  # images whose intermediate outputs are held at once during calibration


def export_onnx(req: ExportRequest, out: Path) -> ArtifactRecord:
    out = Path(out)
    if req.precision == "int8":
        req.check_calibration()  # before the slow export
    model = _export_fp32(req)
    details: dict = {}
    if req.precision == "int8":
        model, details = _quantize(model, req)
        scheme = ("ORT static QDQ, per-channel symmetric int8 weights, int8 activations "
                  f"({details['calibration']} calibration)")
    else:
        scheme = "fp32"
    # Node metadata (stack traces with build-host paths, fx nodes) is exporter debug info.
    for node in model.graph.node:
        del node.metadata_props[:]
    set_metadata(model, req.metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))  # one self-contained file: the caller renames `out`
    ops = Counter(n.op_type for n in model.graph.node)
    details = {
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
        "nodes": len(model.graph.node),
        "op_types": dict(sorted(ops.items())),
        **details,
    }
    return ArtifactRecord(format="onnx", precision=req.precision, scheme=scheme, details=details)


def set_metadata(model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    """Replace metadata_props with `metadata` (dropping ORT's own `onnx.quant.*` tool tags)."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=str(key), value=str(value))


def _export_fp32(req: ExportRequest) -> onnx.ModelProto:
    names = list(req.example_inputs)
    log = io.StringIO()
    try:
        # The exporter prints progress lines to stdout; keep them for the error message only.
        with contextlib.redirect_stdout(log), torch.no_grad():
            program = torch.onnx.export(
                req.model.eval(),
                req.example_args(),
                input_names=names,
                output_names=list(req.output_names),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as e:
        raise EdgecapError(f"ONNX export of {type(req.model).__name__} failed: {e}\n{log.getvalue()[-2000:]}") from e
    model = program.model_proto
    got_in = [i.name for i in model.graph.input]
    got_out = [o.name for o in model.graph.output]
    if got_in != names or got_out != list(req.output_names):
        raise EdgecapError(
            f"ONNX export: graph I/O {got_in} -> {got_out} does not match the request "
            f"{names} -> {list(req.output_names)} (an unused input or a tuple output?)"
        )
    return model


class _Calibration:
    """onnxruntime CalibrationDataReader over the request's named arrays; `set_range` lets
    quantize_static feed it chunk by chunk."""

    def __init__(self, samples: list[Arrays], names: list[str]):
        self._samples, self._names = samples, names
        self.set_range(0, len(samples))

    def __len__(self) -> int:
        return len(self._samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(range(start_index, min(end_index, len(self._samples))))

    def get_next(self):
        i = next(self._it, None)
        if i is None:
            return None
        return {n: np.ascontiguousarray(self._samples[i][n], dtype=np.float32) for n in self._names}


def _chunk(n: int, most: int = CALIBRATION_CHUNK) -> int:
    """The largest chunk size <= most that divides n (ORT requires the stride to divide it)."""
    return next(k for k in range(min(most, n), 0, -1) if n % k == 0)


def _float_nodes(model: onnx.ModelProto, modules: list[str]) -> list[str]:
    """Nodes whose exporter name scopes lie inside one of `modules` (e.g. "normalize")."""
    hits = []
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = ast.literal_eval(meta[_NAME_SCOPES]) if _NAME_SCOPES in meta else []
        # scopes = ['', 'core', 'core.head', 'linear_3']: module paths, then the op's own name.
        if any(s == m or s.startswith(m + ".") for s in scopes[:-1] for m in modules):
            hits.append(node.name)
    return hits


def _quantize(model: onnx.ModelProto, req: ExportRequest) -> tuple[onnx.ModelProto, dict]:
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.shape_inference import quant_pre_process

    names = list(req.example_inputs)
    with tempfile.TemporaryDirectory(prefix="edgecap-onnx-") as tmp:
        fp32, pre, q8 = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(model, str(fp32))
        # Symbolic shape inference is for dynamic dims; our shapes are static (probe API notes).
        # ORT's graph optimization is skipped: its fusions (e.g. MatMul+Add -> Gemm) rename
        # nodes and drop their name scopes, which would let float_modules slip into int8.
        # ORT still applies its fusions when it loads the quantized model.
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True, skip_optimization=True)
        pre_model = onnx.load(str(pre))
        excluded = _float_nodes(pre_model, req.float_modules)
        if req.float_modules and not excluded:
            raise EdgecapError(f"ONNX int8: no node found inside float_modules {req.float_modules}")
        calibration = CALIBRATION
        try:
            _quantize_static(pre, q8, req, names, excluded, CalibrationMethod.Percentile)
        except EdgecapError as e:
            # ORT's percentile histograms grow chunk by chunk from the first chunk's bin width; a
            # tensor nearly constant there and wider later (seen in a float island's solver
            # internals, which ORT calibrates although they stay fp32) overflows numpy's bin count.
            # Min-max ranges need no histogram: fall back, and say so in the manifest.
            if not isinstance(e.__cause__, ValueError) or "bins" not in str(e.__cause__):
                raise
            calibration = f"min-max (percentile calibration failed: {e.__cause__})"
            _quantize_static(pre, q8, req, names, excluded, CalibrationMethod.MinMax)
        qmodel = onnx.load(str(q8))
    quantized, skipped = _check_quantized(pre_model, qmodel, set(excluded))
    if skipped:
        raise EdgecapError(f"ONNX int8: weight-bearing node(s) left unquantized: {skipped}")
    if not quantized:
        raise EdgecapError(
            f"ONNX int8: no {QUANT_OP_TYPES} node was quantized; graph ops are "
            f"{sorted({n.op_type for n in pre_model.graph.node})}"
        )
    ops = Counter(n.op_type for n in qmodel.graph.node)
    return qmodel, {
        "quantized_nodes": len(quantized),
        "float_nodes_excluded": len(excluded),
        "quantize_linear": ops["QuantizeLinear"],
        "dequantize_linear": ops["DequantizeLinear"],
        "calibration_samples": len(req.calibration),
        "calibration": calibration,
    }


def _quantize_static(pre: Path, out: Path, req: ExportRequest, names: list[str], excluded: list[str], method) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    options = {
        # Weights only: an activation x activation MatMul (e.g. RoIAlign's) stays fp32.
        "MatMulConstBOnly": True,
        "CalibStridedMinMax": _chunk(len(req.calibration)),
    }
    if method == CalibrationMethod.Percentile:
        # ORT's percentile calibrator defaults to a symmetric range [-t, t]; the activations are
        # asymmetric int8 (a zero point), so let the range be too.
        options.update({"CalibPercentile": CALIBRATION_PERCENTILE, "CalibTensorRangeSymmetric": False})
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints a line per calibration chunk
            quantize_static(str(pre), str(out), _Calibration(req.calibration, names), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=QUANT_OP_TYPES + FOLDED_ACTIVATIONS, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                            calibrate_method=method, extra_options=options)
    except Exception as e:
        raise EdgecapError(f"ONNX int8: quantize_static failed on {type(req.model).__name__}: {e}") from e


def _check_quantized(pre: onnx.ModelProto, q: onnx.ModelProto, excluded: set[str]) -> tuple[list[str], list[str]]:
    """Names of the weight-bearing Conv/Gemm/MatMul nodes that read their weight through a
    DequantizeLinear, and of those that do not (quantize_static skips some silently).
    An exporter emitting other op types for Linear/Conv shows up as zero quantized nodes."""
    inits = {i.name for i in pre.graph.initializer}
    producer = {o: n.op_type for n in q.graph.node for o in n.output}
    qnodes = {n.name: n for n in q.graph.node}
    quantized, skipped = [], []
    for node in pre.graph.node:
        if node.op_type not in QUANT_OP_TYPES or node.name in excluded or node.input[1] not in inits:
            continue
        qnode = qnodes.get(node.name)
        ok = qnode is not None and producer.get(qnode.input[1]) == "DequantizeLinear"
        (quantized if ok else skipped).append(node.name)
    return quantized, skipped
