"""xsep.nn.SeparableConv2d and xsep.convert."""

import pytest
import torch
from torch import nn

import xsep
from xsep.nn import SeparableConv2d
from xsep.reference import separable_conv2d_reference


def conv_pair(c, cout, k=3, multiplier=1, dw_bias=False, pw_bias=True, **conv):
    dw = nn.Conv2d(c, c * multiplier, k, groups=c, bias=dw_bias, **conv)
    pw = nn.Conv2d(c * multiplier, cout, 1, bias=pw_bias)
    return dw, pw


@pytest.mark.parametrize("bias", [True, False])
def test_initialised_as_the_conv_pair(bias):
    torch.manual_seed(3)
    dw, pw = conv_pair(6, 10, multiplier=2, pw_bias=bias)
    torch.manual_seed(3)
    module = SeparableConv2d(6, 10, 3, depth_multiplier=2, bias=bias)
    assert torch.equal(module.depthwise_weight, dw.weight)
    assert torch.equal(module.pointwise_weight, pw.weight)
    if bias:
        assert torch.equal(module.bias, pw.bias)
    else:
        assert module.bias is None


def test_parameters_and_repr():
    module = SeparableConv2d(4, 8, (3, 5), stride=2, padding="same", dilation=2, depth_multiplier=3, bias=False)
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters()}
    assert shapes == {"depthwise_weight": (12, 1, 3, 5), "pointwise_weight": (8, 12, 1, 1)}
    assert repr(module) == (
        "SeparableConv2d(4, 8, kernel_size=(3, 5), stride=(2, 2), padding='same', dilation=(2, 2), "
        "depth_multiplier=3, bias=False)"
    )


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_module_matches_reference(memory_format):
    module = SeparableConv2d(5, 7, 3, stride=2, padding="same", depth_multiplier=2).double()
    x = torch.randn(2, 5, 13, 10, dtype=torch.float64).contiguous(memory_format=memory_format)
    want = separable_conv2d_reference(x, module.depthwise_weight, module.pointwise_weight, module.bias, 2, "same")
    got = module(x)
    torch.testing.assert_close(got, want)
    assert got.is_contiguous(memory_format=memory_format)


def test_module_to_dtype_and_device_factory():
    module = SeparableConv2d(3, 4, 3, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    assert module(torch.randn(1, 3, 8, 8, dtype=torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("dw_bias", [True, False])
@pytest.mark.parametrize("pw_bias", [True, False])
def test_from_convs_equals_the_pair_and_folds_depthwise_bias(dw_bias, pw_bias):
    dw, pw = conv_pair(4, 6, multiplier=2, dw_bias=dw_bias, pw_bias=pw_bias, stride=2, padding=1, dilation=2)
    dw, pw = dw.double(), pw.double()
    fused = SeparableConv2d.from_convs(dw, pw)
    assert (fused.bias is not None) == (dw_bias or pw_bias)
    x = torch.randn(2, 4, 11, 9, dtype=torch.float64)
    torch.testing.assert_close(fused(x), pw(dw(x)))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_from_convs_same_padding():
    dw, pw = conv_pair(3, 5, k=4, padding="same")
    x = torch.randn(1, 3, 9, 8)
    torch.testing.assert_close(SeparableConv2d.from_convs(dw, pw)(x), pw(dw(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("dw", "pw", "message"),
    [
        (nn.Conv2d(4, 8, 3, groups=2), nn.Conv2d(8, 5, 1), "the first conv must be depthwise"),
        (nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 5, 3), "the second conv must be pointwise"),
        (nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(8, 5, 1), "channels do not chain"),
        (
            nn.Conv2d(4, 4, 3, groups=4, padding=1, padding_mode="reflect"),
            nn.Conv2d(4, 5, 1),
            "the depthwise conv must pad",
        ),
        (nn.Conv2d(4, 4, 3, groups=4), nn.Linear(4, 5), "expected two nn.Conv2d"),
    ],
    ids=["grouped", "pw_3x3", "channels", "reflect", "linear"],
)
def test_from_convs_rejects_non_pairs(dw, pw, message):
    with pytest.raises(ValueError, match=f"SeparableConv2d.from_convs: {message}"):
        SeparableConv2d.from_convs(dw, pw)


class CadeneSeparable(nn.Module):
    """The pair as in Cadene's / timm's legacy Xception."""

    def __init__(self, c, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False)
        self.pointwise = nn.Conv2d(c, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class TimmSeparable(nn.Module):
    def __init__(self, c, cout):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, 2 * c, 3, 2, 1, groups=c, bias=False)
        self.conv_pw = nn.Conv2d(2 * c, cout, 1, bias=True)

    def forward(self, x):
        return self.conv_pw(self.conv_dw(x))


class DepthwiseWithNormBetween(nn.Module):
    """Not a pair: a BatchNorm sits between the convs (e.g. timm's DepthwiseSeparableConv)."""

    def __init__(self, c):
        super().__init__()
        self.conv_dw = nn.Conv2d(c, c, 3, 1, 1, groups=c)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv_pw = nn.Conv2d(c, c, 1)

    def forward(self, x):
        return self.conv_pw(self.bn1(self.conv_dw(x)))


def test_convert_replaces_pairs_and_keeps_outputs():
    model = (
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=True),  # a pair, with a depthwise bias
            nn.Conv2d(8, 16, 1),
            nn.ReLU(),
            CadeneSeparable(16, 16),
            TimmSeparable(16, 12),
            DepthwiseWithNormBetween(12),
            nn.Conv2d(12, 12, 3, padding=1, groups=12),  # followed by a ReLU: not a pair
            nn.ReLU(),
            nn.Conv2d(12, 4, 1),
        )
        .double()
        .eval()
    )
    x = torch.randn(2, 3, 15, 14, dtype=torch.float64)
    before = model(x)
    replaced = xsep.convert(model)
    assert [(r.depthwise, r.pointwise) for r in replaced] == [
        ("1", "2"),
        ("4.conv1", "4.pointwise"),
        ("5.conv_dw", "5.conv_pw"),
    ]
    assert isinstance(model[1], SeparableConv2d) and isinstance(model[2], nn.Identity)
    assert isinstance(model[6].conv_dw, nn.Conv2d) and isinstance(model[7], nn.Conv2d)
    torch.testing.assert_close(model(x), before)
    assert xsep.convert(model) == []  # nothing left to convert


def test_convert_root_pair_module():
    module = CadeneSeparable(4, 6)
    x = torch.randn(1, 4, 7, 7)
    before = module(x)
    assert len(xsep.convert(module)) == 1
    torch.testing.assert_close(module(x), before, rtol=1e-5, atol=1e-5)
