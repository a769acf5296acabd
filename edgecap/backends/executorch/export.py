"""ExecuTorch export (.pte) with the XNNPACK delegate, fp32 or PT2E int8.

A straight line of stages, each failure re-raised as EdgecapError naming the stage:
  fp32: torch.export -> to_edge_transform_and_lower([XnnpackPartitioner]) -> to_executorch
  int8: torch.export -> prepare_pt2e(KeepFloat(XNNPACKQuantizer)) -> calibrate -> convert_pt2e
        -> torch.export -> lower as fp32
The written program is then loaded and run once on the example inputs, because XNNPACK
rejects some delegated subgraphs only at load time (export-probe.md, items 6 and 7).

Metadata: a .pte has no metadata table, but ExecuTorch emits *constant methods*, methods
with no inputs that return fixed strings/ints. The program carries
  `edgecap_metadata()` -> JSON string of `req.metadata`
  `input_names()`, `output_names()` -> lists of strings (a .pte has no tensor names)
and the ArtifactRecord notes say so. Any ExecuTorch runtime reads them with
`module.execute("edgecap_metadata")`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from edgecap import EdgecapError
from edgecap.backends.base import ArtifactRecord, ExportRequest
from edgecap.backends.executorch.runner import INPUT_NAMES_METHOD, METADATA_METHOD, OUTPUT_NAMES_METHOD


def export_executorch(req: ExportRequest, out: Path) -> ArtifactRecord:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    out = Path(out)
    name = type(req.model).__name__
    args = req.example_args()
    model = req.model.eval()
    details: dict = {}
    if req.precision == "int8":
        model, details = _quantize_pt2e(model, req)
        scheme = "XNNPACKQuantizer PT2E static: per-channel symmetric int8 weights, int8 activations"
    else:
        scheme = "fp32, XNNPACK delegate"

    ep = _stage(f"torch.export of {name}", lambda: torch.export.export(model, args))
    constant_methods = {
        METADATA_METHOD: json.dumps(req.metadata, sort_keys=True),
        INPUT_NAMES_METHOD: list(req.example_inputs),
        OUTPUT_NAMES_METHOD: list(req.output_names),
    }
    edge = _stage(
        f"XNNPACK lowering of {name}",
        lambda: to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()], constant_methods=constant_methods),
    )
    details.update(_delegation(edge.exported_program().graph_module))
    program = _stage(f"to_executorch of {name}", edge.to_executorch)
    out.write_bytes(program.buffer)
    _load_check(out, args)
    notes = [
        f"metadata stored as constant method {METADATA_METHOD}() (JSON string); tensor names as "
        f"{INPUT_NAMES_METHOD}() / {OUTPUT_NAMES_METHOD}(): a .pte has no metadata table or tensor names",
    ]
    if details["portable_ops"]:
        notes.append("ops on portable (non-XNNPACK) kernels: " + ", ".join(details["portable_ops"]))
    return ArtifactRecord(format="executorch", precision=req.precision, scheme=scheme, notes=notes, details=details)


def _stage(what: str, fn):
    try:
        return fn()
    except EdgecapError:
        raise
    except Exception as e:
        raise EdgecapError(f"ExecuTorch: {what} failed: {type(e).__name__}: {e}") from e


def _quantize_pt2e(model: torch.nn.Module, req: ExportRequest) -> tuple[torch.nn.Module, dict]:
    from edgecap.quantization.pt2e import ptq_pt2e, xnnpack_quantizer

    name = type(req.model).__name__
    calibration = req.calibration_args()
    gm = _stage(f"PT2E quantization of {name}",
                lambda: ptq_pt2e(model, req.example_args(), calibration, xnnpack_quantizer(req.float_modules)))
    ops = Counter(getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes if n.op == "call_function")
    quant = sum(c for op, c in ops.items() if op.startswith("quantize_per_"))
    dequant = sum(c for op, c in ops.items() if op.startswith("dequantize_per_"))
    if quant == 0:
        raise EdgecapError(f"ExecuTorch int8: XNNPACKQuantizer annotated nothing in {name} (no quantize ops after convert)")
    return gm, {"quantize_ops": quant, "dequantize_ops": dequant, "calibration_samples": len(req.calibration)}


def _delegation(gm: torch.fx.GraphModule) -> dict:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(gm)
    # get_delegation_info also counts the getitem nodes that unpack delegate outputs.
    ops = (getattr(n.target, "__name__", str(n.target)) for n in gm.graph.nodes if n.op == "call_function")
    portable = Counter(op for op in ops if op not in ("getitem", "executorch_call_delegate"))
    return {
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": info.num_delegated_nodes,
        "non_delegated_nodes": sum(portable.values()),
        "portable_ops": [f"{op} x{c}" for op, c in sorted(portable.items())],
    }


def _load_check(path: Path, args: tuple[torch.Tensor, ...]) -> None:
    from executorch.runtime import Runtime

    try:
        Runtime.get().load_program(path).load_method("forward").execute(list(args))
    except Exception as e:
        path.unlink(missing_ok=True)
        raise EdgecapError(
            f"ExecuTorch: {path} fails to load/run in the ExecuTorch runtime (file removed): {e} "
            "(XNNPACK rejects some delegated subgraphs at load time; see the log above)"
        ) from e
