"""Bad input raises a Python exception naming the argument and what it saw; never a crash."""

import pytest
import torch

from xsep.ops import separable_conv2d


def good():
    return {
        "x": torch.randn(2, 4, 9, 9),
        "dw_weight": torch.randn(8, 1, 3, 3),
        "pw_weight": torch.randn(5, 8, 1, 1),
        "bias": torch.randn(5),
        "stride": 1,
        "padding": 1,
        "dilation": 1,
    }


BAD = [
    ("x_rank", {"x": torch.randn(4, 9, 9)}, ValueError, r"x must have shape \(N, C, H, W\); got \(4, 9, 9\)"),
    (
        "dw_not_multiple",
        {"dw_weight": torch.randn(6, 1, 3, 3)},
        ValueError,
        r"dw_weight must have shape \(C\*M, 1, kh, kw\) with C\*M divisible by C=4; got \(6, 1, 3, 3\)",
    ),
    (
        "dw_rank",
        {"dw_weight": torch.randn(8, 3, 3)},
        ValueError,
        r"dw_weight must have shape \(C\*M, 1, kh, kw\); got \(8, 3, 3\)",
    ),
    (
        "dw_second_dim",  # (C*M, C/S, ...) needs S segments dividing C; 3 does not divide 4
        {"dw_weight": torch.randn(8, 3, 3, 3)},
        ValueError,
        r"dw_weight must have shape \(C\*M, C/S, kh, kw\) for S segments dividing C=4 and C\*M; got \(8, 3, 3, 3\)",
    ),
    (
        "pw_channels",
        {"pw_weight": torch.randn(5, 4, 1, 1)},
        ValueError,
        r"pw_weight must have shape \(Cout, C\*M=8, 1, 1\); got \(5, 4, 1, 1\)",
    ),
    (
        "pw_not_1x1",
        {"pw_weight": torch.randn(5, 8, 3, 3)},
        ValueError,
        r"pw_weight must have shape \(Cout, C\*M=8, 1, 1\); got \(5, 8, 3, 3\)",
    ),
    ("bias_shape", {"bias": torch.randn(4)}, ValueError, r"bias must have shape \(Cout=5,\); got \(4,\)"),
    (
        "kernel_too_big",
        {"x": torch.randn(2, 4, 2, 9), "padding": 0},
        ValueError,
        r"the dilated kernel \(3, 3\) is larger than the padded input \(2, 9\)",
    ),
    ("stride_zero", {"stride": 0}, ValueError, r"stride must be positive; got 0"),
    ("stride_negative", {"stride": (1, -2)}, ValueError, r"stride must be positive; got \(1, -2\)"),
    ("dilation_zero", {"dilation": 0}, ValueError, r"dilation must be positive; got 0"),
    ("padding_negative", {"padding": -1}, ValueError, r"padding must be non-negative; got -1"),
    ("padding_word", {"padding": "full"}, ValueError, r"padding must be .*'same' or 'valid'; got 'full'"),
    ("padding_triple", {"padding": (1, 1, 1)}, TypeError, r"padding must be an int, a pair"),
    ("stride_float", {"stride": 1.5}, TypeError, r"stride must be an int or a pair of ints; got 1.5"),
    (
        "dtype_mix",
        {"dw_weight": torch.randn(8, 1, 3, 3, dtype=torch.float64)},
        TypeError,
        r"all tensors must share one dtype \(or run under torch.autocast\); "
        r"got x torch.float32, dw_weight torch.float64",
    ),
    ("int_x", {"x": torch.ones(2, 4, 9, 9, dtype=torch.int64)}, TypeError, r"x must be float16, .*got torch.int64"),
    ("bool_bias", {"bias": torch.ones(5, dtype=torch.bool)}, TypeError, r"bias must be float.*got torch.bool"),
    (
        "complex_x",
        {"x": torch.randn(2, 4, 9, 9, dtype=torch.complex64)},
        TypeError,
        r"x must be float16.*got torch.complex64",
    ),
    ("sparse_x", {"x": torch.randn(2, 4, 9, 9).to_sparse()}, TypeError, r"x must be a dense \(strided\) tensor"),
    ("not_a_tensor", {"pw_weight": [[1.0]]}, TypeError, r"pw_weight must be a torch.Tensor; got list"),
    ("mkldnn_x", {"x": torch.randn(2, 4, 9, 9).to_mkldnn()}, TypeError, r"x must be a dense \(strided\) tensor"),
    (
        "csr_pw",
        {"pw_weight": torch.randn(5, 8).to_sparse_csr()},
        TypeError,
        r"pw_weight must be a dense \(strided\) tensor; got layout torch.sparse_csr",
    ),
    ("uint8_x", {"x": torch.ones(2, 4, 9, 9, dtype=torch.uint8)}, TypeError, r"x must be float16.*got torch.uint8"),
    (
        "device_mix",
        {"bias": torch.randn(5, device="meta")},
        ValueError,
        r"all tensors must be on one device; got x on cpu, dw_weight on cpu, pw_weight on cpu, bias on meta",
    ),
]


@pytest.mark.parametrize(("change", "error", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_clear_error(change, error, message):
    kwargs = good() | change
    with pytest.raises(error, match=r"^separable_conv2d: " + message):
        separable_conv2d(**kwargs)


# Direct torch.ops calls skip the Python checks: the C++ checks must still stop them.
DIRECT = [
    ("x_rank", {"x": torch.randn(4, 9, 9)}, "x must have shape"),
    ("dw_not_multiple", {"dw_weight": torch.randn(6, 1, 3, 3)}, "divisible by C=4"),
    ("pw_channels", {"pw_weight": torch.randn(5, 4, 1, 1)}, "pw_weight must have shape"),
    ("bias_shape", {"bias": torch.randn(4)}, "bias must have shape"),
    ("kernel_too_big", {"x": torch.randn(2, 4, 2, 9), "padding": [0, 0, 0, 0]}, "larger than the padded input"),
    ("padding_negative", {"padding": [1, -1, 1, 1]}, "padding must be non-negative"),
    ("stride_zero", {"stride": [0, 1]}, "stride must be positive"),
    ("dtype_mix", {"pw_weight": torch.randn(5, 8, 1, 1, dtype=torch.float64)}, "must share a dtype"),
    ("int_x", {"x": torch.ones(2, 4, 9, 9, dtype=torch.int32)}, "x must be float16"),
]


@pytest.mark.parametrize(("change", "message"), [d[1:] for d in DIRECT], ids=[d[0] for d in DIRECT])
def test_direct_op_call_checks_inputs(change, message):
    kwargs = good() | {"padding": [1, 1, 1, 1], "stride": [1, 1], "dilation": [1, 1]} | change
    with pytest.raises((ValueError, TypeError), match=message):
        torch.ops.xsep.separable_conv2d(*kwargs.values())


def test_backward_op_checks_grad_shape():
    g = good()
    with pytest.raises(ValueError, match=r"grad_out must have the output's shape \(2, 5, 9, 9\); got \[2, 5, 9\]"):
        torch.ops.xsep.separable_conv2d_backward(
            torch.randn(2, 5, 9),
            g["x"],
            g["dw_weight"],
            g["pw_weight"],
            [1, 1],
            [1, 1, 1, 1],
            [1, 1],
            "none",
            [True] * 4,
        )


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor.*deprecated:UserWarning")
def test_quantized_tensors_are_refused():
    q = torch.quantize_per_tensor(good()["x"], 0.1, 0, torch.quint8)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor, not quantized; got torch.quint8"):
        separable_conv2d(**(good() | {"x": q}))
    # Past the Python checks, the dispatcher has no quantized kernel of the op and says so.
    g = good()
    with pytest.raises(NotImplementedError, match=r"Could not run 'xsep::separable_conv2d' .*'QuantizedCPU'"):
        torch.ops.xsep.separable_conv2d(q, g["dw_weight"], g["pw_weight"], None, [1, 1], [1, 1, 1, 1], [1, 1])


@pytest.mark.cuda
def test_cpu_and_cuda_tensors_mixed():
    with pytest.raises(ValueError, match=r"all tensors must be on one device; got x on cuda:0, dw_weight on cpu"):
        separable_conv2d(**(good() | {"x": good()["x"].cuda()}))


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_tensors_on_two_gpus():
    g = {k: (v.to("cuda:0") if isinstance(v, torch.Tensor) else v) for k, v in good().items()}
    g["pw_weight"] = g["pw_weight"].to("cuda:1")
    with pytest.raises(ValueError, match=r"all tensors must be on one device; .*pw_weight on cuda:1"):
        separable_conv2d(**g)
