"""LiteRT (`.tflite`) export: fp32, and static int8 through PT2E with float I/O.

int8: LiteRT's PT2EQuantizer (symmetric, per-channel int8 weights, int8 activations) wrapped
in `KeepFloat` so `req.float_modules` stay fp32, calibrated on `req.calibration`. The model
keeps float32 inputs and outputs (but for the request's `quantized_outputs`, e.g. a split
first part's features handed to the next part, which the runner dequantizes); QUANTIZE/DEQUANTIZE ops sit inside the graph.

Metadata goes into the flatbuffer's native `Model.metadata` table: one entry "edgecap" whose
buffer is the JSON of `req.metadata` plus the edgecap input/output names and the LiteRT
signature keys they map to (`args_0`, `output_0`, ...), which is all a runner needs.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import litert_torch
import numpy as np
import torch
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.tools import flatbuffer_utils
from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
from litert_torch.quantize.quant_config import QuantConfig

from edgecap import EdgecapError
from edgecap.backends.base import ArtifactRecord, ExportRequest
from edgecap.backends.tflite.runner import METADATA_NAME, TFLiteRunner, delegation, read_tflite_metadata
from edgecap.quantization.pt2e import KeepFloat, ptq_pt2e

__all__ = ["export_tflite", "read_tflite_metadata", "tflite_op_stats"]

# Ops whose int8 form is the point of int8 export; at least one must come out int8.
_INT8_COMPUTE_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL")
_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def export_tflite(req: ExportRequest, out: Path) -> ArtifactRecord:
    """Convert `req.model` to a `.tflite` file at `out`, load it back and run it once."""
    out = Path(out)
    model = req.model.eval()
    args = req.example_args()
    what = f"LiteRT {req.precision} conversion of {type(model).__name__}"
    start = time.perf_counter()
    try:
        if req.precision == "fp32":
            edge = litert_torch.convert(model, args)
        else:
            edge = _convert_int8(req, model, args)
        fb = flatbuffer_utils.read_model_from_bytearray(edge.model_content())
    except EdgecapError:
        raise
    except Exception as e:  # the converters' messages name the failing node/op
        raise EdgecapError(f"{what} failed: {type(e).__name__}: {e}") from e
    convert_s = time.perf_counter() - start

    input_keys, output_keys, int8_inputs, int8_outputs = _signature_keys(fb, req, what)
    stats = tflite_op_stats(fb)
    if req.precision == "int8" and not any(stats["int8_ops"].get(op) for op in _INT8_COMPUTE_OPS):
        raise EdgecapError(
            f"{what}: no int8 {'/'.join(_INT8_COMPUTE_OPS)} op in the result (ops: {stats['ops']}); "
            f"check float_modules={req.float_modules}"
        )
    metadata = {
        **req.metadata,
        "input_names": ",".join(req.example_inputs),
        "output_names": ",".join(req.output_names),
        "tflite_inputs": ",".join(input_keys),
        "tflite_outputs": ",".join(output_keys),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_with_metadata(fb, metadata))

    # Load the written file (metadata rewrite included) and run the example once.
    runner = TFLiteRunner(out)
    xnnpack = delegation(out)
    got = runner.run(req.example_inputs)
    with torch.no_grad():
        ref = model(*args)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    example_diff = {}
    for name, r in zip(req.output_names, ref):
        if got[name].shape != tuple(r.shape):
            raise EdgecapError(f"{out}: output {name!r} has shape {got[name].shape}, eager gives {tuple(r.shape)}")
        example_diff[name] = float(np.abs(got[name] - r.numpy()).max())

    if req.precision == "fp32":
        scheme = "LiteRT fp32 (litert-torch)"
    else:
        scheme = "LiteRT static int8: PT2E symmetric per-channel int8 weights, int8 activations"
    notes = []
    if req.precision == "int8" and req.float_modules:
        notes.append(f"fp32 modules: {', '.join(req.float_modules)}")
    for name, q in int8_inputs.items():
        notes.append(f"input {name!r} is int8: q = round(x / {q['scale']:.6g}) + {q['zero_point']} "
                     "(TFLiteRunner does it for float input)")
    for name, q in int8_outputs.items():
        notes.append(f"output {name!r} is int8: x = {q['scale']:.6g} * (q - {q['zero_point']}) "
                     "(TFLiteRunner returns it dequantized)")
    return ArtifactRecord(
        format="tflite",
        precision=req.precision,
        scheme=scheme,
        notes=notes,
        details={
            "convert_s": round(convert_s, 2),
            "signature": {
                "inputs": dict(zip(req.example_inputs, input_keys)),
                "outputs": dict(zip(req.output_names, output_keys)),
            },
            **stats,
            "int8_inputs": int8_inputs,
            "int8_outputs": int8_outputs,
            "xnnpack": xnnpack,
            "example_max_abs_diff_vs_eager": example_diff,
        },
    )


def _convert_int8(req: ExportRequest, model: torch.nn.Module, args: tuple) -> litert_torch.model.LiteRTModel:
    base = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    # KeepFloat instead of base.set_module_name(..., None), which is a no-op on torch 2.13 (item 10);
    # unfolded weights: folded int8 weights fail to lower (item 13).
    gm = ptq_pt2e(model, args, req.calibration_args(), KeepFloat(base, req.float_modules), fold_quantize=False)
    _one_dequantize_per_user(gm)
    # The graph was exported from an eval-mode model; exported modules refuse .eval(), so clear the
    # flag litert_torch reads for its "converted in training mode" warning.
    gm.training = False
    # QuantConfig reads `global_config` (item 11), which the base quantizer has and KeepFloat does not;
    # it only selects the STATIC qdq mode, the exclusions are already in `gm`.
    return litert_torch.convert(gm, args, quant_config=QuantConfig(pt2e_quantizer=base))


def _one_dequantize_per_user(gm: torch.fx.GraphModule) -> None:
    """Give every user of a dequantize node its own copy (a no-op for the arithmetic).

    Why: litert-torch's layout pass (`OptimizeLayoutTransposesPass.insert_t_q_dq`) assigns one
    meta dict to the dequantize node and to the transpose it inserts after it, so marking the
    transpose NCHW marks the dequantize NCHW too. A second NCHW consumer of the same dequantize
    (the box and the DensePose RoIAlign both read P2) then gets no transpose and reads the NHWC
    buffer as NCHW: the int8 DensePose head pooled scrambled features.
    """
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or "dequantize" not in str(node.target):
            continue
        for user in list(node.users)[1:]:
            with gm.graph.inserting_before(user):
                user.replace_input_with(node, gm.graph.node_copy(node))
    gm.graph.lint()
    gm.recompile()


def _signature_keys(fb: schema.ModelT, req: ExportRequest, what: str) -> tuple[list[str], list[str], dict, dict]:
    """LiteRT's signature keys for the request's inputs and outputs, in order, and the int8
    inputs and outputs with their (scale, zero_point). An input is int8 when the model's first
    op reads it directly and was quantized (a CNN's image input; export-probe item 15): the
    runner quantizes it, an app can feed int8 pixels directly. Outputs must be float32 unless
    the request lists them in `quantized_outputs` (the runner dequantizes those): any other
    int8 output means the op writing it belongs in float_modules."""
    if len(fb.signatureDefs or []) != 1:
        raise EdgecapError(f"{what}: expected one signature, found {len(fb.signatureDefs or [])}")
    sig = fb.signatureDefs[0]
    tensors = fb.subgraphs[sig.subgraphIndex].tensors
    int8: dict[str, dict[str, dict]] = {"input": {}, "output": {}}
    allowed = {"input": set(req.example_inputs), "output": set(req.quantized_outputs)}

    def keys(side: str, maps: list, names: list[str], prefix: str) -> list[str]:
        found = {_text(m.name): m.tensorIndex for m in maps}
        expected = [f"{prefix}_{i}" for i in range(len(names))]
        if sorted(found) != sorted(expected):
            raise EdgecapError(f"{what}: signature {side}s are {sorted(found)}, expected {expected} for {names}")
        for name, key in zip(names, expected):
            tensor = tensors[found[key]]
            kind = flatbuffer_utils.type_to_name(tensor.type)
            q = tensor.quantization
            if (name in allowed[side] and kind == "INT8" and q is not None and q.scale is not None
                    and len(q.scale) == 1):
                int8[side][name] = {"scale": float(q.scale[0]), "zero_point": int(q.zeroPoint[0])}
            elif kind != "FLOAT32":
                raise EdgecapError(
                    f"{what}: {side} {name!r} ({key}) is {kind}, expected FLOAT32; the ops next to it were "
                    f"quantized: keep their modules in float_modules (now {req.float_modules})"
                )
        return expected

    inputs = keys("input", sig.inputs, list(req.example_inputs), "args")
    outputs = keys("output", sig.outputs, req.output_names, "output")
    return inputs, outputs, int8["input"], int8["output"]


def tflite_op_stats(fb: schema.ModelT) -> dict:
    """Op counts by builtin name, and the ops that compute in int8 (an INT8 output; QUANTIZE excluded)."""
    ops, int8_ops = Counter(), Counter()
    for sg in fb.subgraphs:
        for op in sg.operators:
            code = fb.operatorCodes[op.opcodeIndex]
            builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
            name = _BUILTIN_NAMES.get(builtin, str(builtin))
            if name == "CUSTOM":
                name = f"CUSTOM:{_text(code.customCode)}"
            ops[name] += 1
            if name != "QUANTIZE" and any(sg.tensors[t].type == schema.TensorType.INT8 for t in op.outputs):
                int8_ops[name] += 1
    return {
        "ops": dict(sorted(ops.items())),
        "op_total": sum(ops.values()),
        "int8_ops": dict(sorted(int8_ops.items())),
        "int8_op_total": sum(int8_ops.values()),
    }


class _AlignedBufferT(schema.BufferT):
    """The schema declares Buffer.data `force_align: 16`, but the generated Python Pack aligns
    byte vectors to 1, which can leave float weights misaligned in the mmapped file.

    Prep(16, n) pads so the n data bytes start on a 16-byte boundary (the builder writes
    backwards and Finish pads to its largest alignment).
    """

    def Pack(self, builder):  # noqa: N802 (flatbuffers naming)
        if self.data is not None and len(self.data):
            builder.Prep(16, len(self.data))
        return super().Pack(builder)


def _with_metadata(fb: schema.ModelT, metadata: dict[str, str]) -> bytes:
    """The model re-serialized with `metadata` as JSON under Model.metadata["edgecap"]."""
    blob = schema.BufferT()
    blob.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    fb.buffers.append(blob)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(fb.buffers) - 1
    fb.metadata = [m for m in fb.metadata or [] if _text(m.name) != METADATA_NAME] + [entry]
    for buffer in fb.buffers:
        buffer.__class__ = _AlignedBufferT
    return bytes(flatbuffer_utils.convert_object_to_bytearray(fb))


def _text(s: str | bytes | None) -> str:
    return s.decode() if isinstance(s, bytes) else (s or "")
