"""Normalises the geometric arguments of a convolution: stride, dilation and padding.

Shared by the reference, the op wrapper and the modules so all three agree on what
"same" means. Padding is returned as (top, bottom, left, right).
"""

from __future__ import annotations

from collections.abc import Sequence

Padding = int | tuple[int, int] | str
Pad4 = tuple[int, int, int, int]


def pair(fn: str, name: str, value: int | Sequence[int]) -> tuple[int, int]:
    """`value` as (height, width); an int applies to both."""
    if isinstance(value, bool) or not isinstance(value, (int, Sequence)):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints; got {value!r}")
    values = (value, value) if isinstance(value, int) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints; got {value!r}")
    if any(v < 1 for v in values):
        raise ValueError(f"{fn}: {name} must be positive; got {value!r}")
    return values  # type: ignore[return-value]


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" along one axis: output = ceil(size / stride), extra pad at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    fn: str,
    padding: Padding,
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Pad4:
    """Padding as (top, bottom, left, right) for an input of size `input_hw`.

    padding: int (all sides), (ph, pw) (symmetric per axis), "valid" (none) or "same"
    (TensorFlow's rule: asymmetric when the total is odd, at any stride).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            top, bottom = same_padding(input_hw[0], kernel_hw[0], stride[0], dilation[0])
            left, right = same_padding(input_hw[1], kernel_hw[1], stride[1], dilation[1])
            return (top, bottom, left, right)
        raise ValueError(f"{fn}: padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
    if isinstance(padding, bool) or not isinstance(padding, (int, Sequence)):
        raise TypeError(f"{fn}: padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
    values = (padding, padding) if isinstance(padding, int) else tuple(padding)
    if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{fn}: padding must be an int, a pair of ints, 'same' or 'valid'; got {padding!r}")
    if any(v < 0 for v in values):
        raise ValueError(f"{fn}: padding must be non-negative; got {padding!r}")
    ph, pw = values
    return (ph, ph, pw, pw)


def output_hw(
    fn: str,
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride: tuple[int, int],
    pad: Pad4,
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """Output (H, W); raises if the dilated kernel does not fit the padded input."""
    padded = (input_hw[0] + pad[0] + pad[1], input_hw[1] + pad[2] + pad[3])
    span = ((kernel_hw[0] - 1) * dilation[0] + 1, (kernel_hw[1] - 1) * dilation[1] + 1)
    if padded[0] < span[0] or padded[1] < span[1]:
        raise ValueError(
            f"{fn}: the dilated kernel {span} is larger than the padded input {padded} "
            f"(input {tuple(input_hw)}, padding (top, bottom, left, right) {pad})"
        )
    return ((padded[0] - span[0]) // stride[0] + 1, (padded[1] - span[1]) // stride[1] + 1)
