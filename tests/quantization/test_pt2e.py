"""KeepFloat: modules left fp32 inside an otherwise int8 PT2E graph."""

import torch

from edgecap.quantization.pt2e import ptq_pt2e, xnnpack_quantizer


class PoolThenFC(torch.nn.Module):
    """DensePose R-CNN's box branch in miniature: a float pooler whose last op is an add, then
    a flatten (a view: XNNPACK shares its qspec with its input's) and a Linear."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.pool = Pool()
        self.fc = torch.nn.Linear(4 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(self.pool(self.stem(x)).flatten(1))


class Pool(torch.nn.Module):
    def forward(self, x):
        return torch.nn.functional.max_pool2d(x, 2) + 0.5


def test_a_view_after_a_float_module_does_not_break_prepare():
    torch.manual_seed(0)
    model = PoolThenFC().eval()
    images = [(torch.randn(1, 3, 8, 8),) for _ in range(4)]
    gm = ptq_pt2e(model, images[0], images, xnnpack_quantizer(["pool"]))
    calls = {str(n.target).split(".")[1]: n for n in gm.graph.nodes if n.op == "call_function"}
    # The pooler's add and the flatten after it stay fp32; the Linear still reads int8.
    assert all("quantize" not in str(u.target) for u in calls["add"].users)
    assert "dequantize" in str(calls["linear"].args[0].target)
    assert "dequantize" in str(calls["linear"].args[1].target)
    with torch.no_grad():
        err = (gm(*images[0]) - model(*images[0])).abs().max()
    assert err < 0.1, err
