"""`convert(model)`: swap depthwise conv -> 1x1 conv pairs in an existing model for the fused op."""

from __future__ import annotations

import logging
from typing import NamedTuple

from torch import nn

from xsep.nn.separable_conv2d import SeparableConv2d, pair_mismatch

_log = logging.getLogger("xsep")

# Modules of other libraries whose forward is exactly `second(first(x))` when these are their
# only children: Cadene's / timm's legacy Xception SeparableConv2d, timm's layers.SeparableConv2d.
NAMED_PAIRS = (("conv1", "pointwise"), ("conv_dw", "conv_pw"))


class Replacement(NamedTuple):
    """One fused pair: the fused module sits at `depthwise`, the pointwise slot became Identity."""

    depthwise: str
    pointwise: str
    module: SeparableConv2d


def convert(model: nn.Module) -> list[Replacement]:
    """Replace, in place, every depthwise conv directly followed by a pointwise 1x1 conv.

    Finds pairs with nothing between them: consecutive children of an nn.Sequential, and
    modules whose only children are a named pair (``conv1``/``pointwise`` as in Cadene's and
    timm's legacy Xception, ``conv_dw``/``conv_pw`` as in timm's SeparableConv2d). The depthwise
    slot gets the fused ``SeparableConv2d`` (weights carried over, a depthwise bias folded into
    the pointwise bias) and the pointwise slot an ``nn.Identity``, so the model's forward and
    its outputs are unchanged. State-dict keys of converted pairs change accordingly.

    Returns what was replaced (also logged at INFO on the "xsep" logger).
    """
    replaced: list[Replacement] = []
    for parent_name, parent in list(model.named_modules()):
        for first, second in _candidate_pairs(parent):
            dw, pw = getattr(parent, first), getattr(parent, second)
            if pair_mismatch(dw, pw) is not None:
                continue
            fused = SeparableConv2d.from_convs(dw, pw)
            setattr(parent, first, fused)
            setattr(parent, second, nn.Identity())
            prefix = f"{parent_name}." if parent_name else ""
            replaced.append(Replacement(prefix + first, prefix + second, fused))
            _log.info("xsep.convert: fused %s%s + %s%s -> %s", prefix, first, prefix, second, fused)
    return replaced


def _candidate_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    names = [name for name, _ in parent.named_children()]
    if isinstance(parent, nn.Sequential):
        pairs, i = [], 0
        while i + 1 < len(names):
            if pair_mismatch(parent[i], parent[i + 1]) is None:
                pairs.append((names[i], names[i + 1]))
                i += 2
            else:
                i += 1
        return pairs
    return [pair for pair in NAMED_PAIRS if sorted(names) == sorted(pair)]
