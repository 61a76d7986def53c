"""Models using the op survive torch.export, ONNX export (as standard Conv nodes, run in
onnxruntime), torch.jit.trace and torch.jit.script."""

import pytest
import torch
from torch import nn

from xsep.models import xception
from xsep.nn import SeparableConv2d, UnfusedSeparableConv2d

# Tracing turns the wrapper's shape checks into constants (expected: a trace is specific to its
# input sizes, as for any shape logic), and TorchScript's trace API is deprecated upstream.
pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.trace.*` is deprecated:DeprecationWarning"),
]


def small_model(cls=SeparableConv2d) -> nn.Module:
    """'same' at stride 2 (asymmetric padding), dilation, depth multiplier, bias on and off."""
    torch.manual_seed(0)
    return nn.Sequential(
        cls(5, 7, 3, stride=2, padding="same"),
        nn.ReLU(),
        cls(7, 6, (3, 5), padding=(2, 4), dilation=2, depth_multiplier=2, bias=False),
        cls(6, 4, 1, padding="valid"),
    ).eval()


def test_torch_export_keeps_the_op():
    model, x = small_model(), torch.randn(2, 5, 13, 10)
    ep = torch.export.export(model, (x,))
    ops = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert ops.count(torch.ops.xsep.separable_conv2d.default) == 3
    torch.testing.assert_close(ep.module()(x), model(x), rtol=0, atol=0)


def test_torch_export_with_dynamic_batch():
    model = small_model()
    batch = torch.export.Dim("batch", min=1, max=64)
    ep = torch.export.export(model, (torch.randn(2, 5, 13, 10),), dynamic_shapes=({0: batch},))
    x = torch.randn(5, 5, 13, 10)
    torch.testing.assert_close(ep.module()(x), model(x), rtol=0, atol=0)


def test_export_decomposes_to_standard_convolutions():
    model, x = small_model(), torch.randn(2, 5, 13, 10)
    op = torch.ops.xsep.separable_conv2d.default
    ep = torch.export.export(model, (x,)).run_decompositions({op: torch._decomp.decomposition_table[op]})
    ops = {n.target for n in ep.graph.nodes if n.op == "call_function"}
    assert op not in ops
    assert torch.ops.aten.convolution.default in ops
    torch.testing.assert_close(ep.module()(x), model(x), rtol=1e-5, atol=1e-5)


def test_xception_exports():
    model = xception(num_classes=10).eval()
    x = torch.randn(1, 3, 71, 71)
    ep = torch.export.export(model, (x,))
    torch.testing.assert_close(ep.module()(x), model(x), rtol=0, atol=0)


def test_onnx_export_is_standard_conv_nodes(tmp_path):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, x = small_model(), torch.randn(2, 5, 13, 10)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True)
    graph = onnx.load(str(path)).graph
    kinds = [node.op_type for node in graph.node]
    assert kinds.count("Conv") == 6, kinds
    assert set(kinds) <= {"Conv", "Pad", "Relu"}, kinds
    assert all(node.domain in ("", "ai.onnx") for node in graph.node)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (2,):
        x = torch.randn(batch, 5, 13, 10)
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), model(x), rtol=1e-4, atol=1e-5)


def test_jit_trace():
    model, x = small_model(), torch.randn(2, 5, 13, 10)
    traced = torch.jit.trace(model, (x,))
    assert "xsep::separable_conv2d" in str(traced.inlined_graph)
    torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("cls", [SeparableConv2d, UnfusedSeparableConv2d], ids=["fused", "unfused"])
def test_jit_script(cls):
    model = small_model(cls)
    scripted = torch.jit.script(model)
    assert list(scripted.state_dict()) == list(model.state_dict())
    for size in ((13, 10), (12, 17)):  # 'same' padding is recomputed per input size
        x = torch.randn(2, 5, *size)
        torch.testing.assert_close(scripted(x), model(x), rtol=0, atol=0)
    if cls is SeparableConv2d:
        assert "xsep::separable_conv2d" in str(scripted.inlined_graph)
    message = r"dw_weight must have shape" if cls is SeparableConv2d else r"to have 5 channels, but got 4 channels"
    with pytest.raises(RuntimeError, match=message):
        scripted(torch.randn(2, 4, 13, 10))  # 4 channels where the model wants 5


def test_jit_script_of_a_subclass_with_its_own_forward_compiles_that_forward():
    class Scaled(SeparableConv2d):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * x

    scripted = torch.jit.script(Scaled(3, 3, 3))
    x = torch.randn(1, 3, 5, 5)
    torch.testing.assert_close(scripted(x), 2 * x)
