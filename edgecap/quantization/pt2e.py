"""PT2E helpers shared by the ExecuTorch and LiteRT int8 paths.

`KeepFloat` wraps any PT2E quantizer and strips its annotations from nodes that belong to
the named modules, so they stay fp32 (normalization, box decoding, NMS, RoIAlign). It reads
`nn_module_stack` itself because the quantizers' own module filters do not match with
torch 2.13 (export-probe.md, item 10). A node left int8 whose qspec is shared with a stripped
one (XNNPACK propagates its input's qspec onto a view, e.g. the flatten between DensePose
R-CNN's float RoIPool and its FC box head) is stripped too, else `prepare_pt2e` fails on the
missing root (KeyError).
"""

from __future__ import annotations

import torch
from torch import fx
from torchao.quantization.pt2e.quantizer import Quantizer, SharedQuantizationSpec

_ANNOTATION_KEY = "quantization_annotation"


def node_in_modules(node: fx.Node, module_names: list[str]) -> bool:
    stack = node.meta.get("nn_module_stack") or {}
    for path, _type in stack.values():
        if any(path == m or path.startswith(m + ".") for m in module_names):
            return True
    return False


class KeepFloat(Quantizer):
    """Delegate to `base`, then drop annotations inside `module_names`."""

    def __init__(self, base: Quantizer, module_names: list[str]):
        super().__init__()
        self.base = base
        self.module_names = list(module_names)

    def transform_for_annotation(self, model: fx.GraphModule) -> fx.GraphModule:
        return self.base.transform_for_annotation(model)

    def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
        model = self.base.annotate(model)
        for node in model.graph.nodes:
            if _ANNOTATION_KEY in node.meta and node_in_modules(node, self.module_names):
                del node.meta[_ANNOTATION_KEY]
        _strip_dangling_shares(model)
        return model

    def validate(self, model: fx.GraphModule) -> None:
        self.base.validate(model)


def _strip_dangling_shares(model: fx.GraphModule) -> None:
    """Strip annotations that share a qspec with an unannotated node or edge, to a fixed point."""

    def annotated(edge_or_node) -> bool:
        if isinstance(edge_or_node, tuple):  # an edge (producer, consumer): the consumer must quantize it
            src, dst = edge_or_node
            ann = dst.meta.get(_ANNOTATION_KEY)
            return ann is not None and src in ann.input_qspec_map
        ann = edge_or_node.meta.get(_ANNOTATION_KEY)
        return ann is not None and ann.output_qspec is not None

    changed = True
    while changed:
        changed = False
        for node in model.graph.nodes:
            ann = node.meta.get(_ANNOTATION_KEY)
            if ann is None:
                continue
            specs = [*ann.input_qspec_map.values(), ann.output_qspec]
            if any(isinstance(s, SharedQuantizationSpec) and not annotated(s.edge_or_node) for s in specs):
                del node.meta[_ANNOTATION_KEY]
                changed = True


def ptq_pt2e(model: torch.nn.Module, example_args: tuple, calibration: list[tuple], quantizer: Quantizer,
             fold_quantize: bool = True, dynamic_batch: bool = False) -> fx.GraphModule:
    """Post-training quantization: export, insert observers, calibrate, convert.
    `dynamic_batch` keeps dim 0 free (for fast eager simulation; artifacts use static shapes)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    dynamic = tuple({0: torch.export.Dim("batch", min=1, max=65536)} for _ in example_args) if dynamic_batch else None
    gm = torch.export.export(model.eval(), example_args, dynamic_shapes=dynamic).module()
    gm = prepare_pt2e(gm, quantizer)
    with torch.no_grad():
        for args in calibration:
            gm(*args)
    return convert_pt2e(gm, fold_quantize=fold_quantize)


def xnnpack_quantizer(float_modules: list[str], is_qat: bool = False) -> Quantizer:
    """Symmetric per-channel int8 weights, int8 activations (XNNPACK's scheme), minus float_modules."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    base = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat))
    return KeepFloat(base, float_modules)
