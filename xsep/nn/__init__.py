"""Modules built on the fused op: ``SeparableConv2d`` and ``convert``."""

from xsep.nn.convert import Replacement, convert
from xsep.nn.separable_conv2d import SeparableConv2d, UnfusedSeparableConv2d

__all__ = ["Replacement", "SeparableConv2d", "UnfusedSeparableConv2d", "convert"]
