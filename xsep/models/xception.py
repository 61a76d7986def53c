"""Xception (Chollet, 2017) on the fused separable convolution.

Entry flow (stem + 3 down-sampling blocks), middle flow (8 residual blocks of three 728-channel
separable convs), exit flow (one down-sampling block, two separable convs, global pooling,
classifier). Every separable conv is 3x3 with no activation inside, followed by batch norm; the
down-sampling blocks end in a 3x3 stride-2 max-pool and add a 1x1 stride-2 conv + BN skip.

Module names follow timm's / Cadene's `legacy_xception` (conv1, bn1, block1..block12 with `rep`,
`skip`, `skipbn`, conv3, conv4, fc), so their checkpoints map one to one; Keras's layer names map
through `load_keras_weights`.

Two sources disagree in small ways, so `compat` picks the behaviour:
  "keras" (default, the paper's TensorFlow model): BN epsilon 1e-3, momentum as Keras's 0.99, and
          max-pools padded as TensorFlow's "same" (asymmetric on even inputs, e.g. the 74->37 pool);
  "timm":  BN epsilon 1e-5, momentum 0.1, max-pools padded 1 on every side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from xsep._conv_args import same_padding
from xsep.nn import SeparableConv2d, UnfusedSeparableConv2d

MIN_INPUT = 71
_COMPAT = {
    "keras": {"bn_eps": 1e-3, "bn_momentum": 0.01, "pool_padding": "same"},
    "timm": {"bn_eps": 1e-5, "bn_momentum": 0.1, "pool_padding": "symmetric"},
}
_BACKENDS = {"xsep": SeparableConv2d, "reference": UnfusedSeparableConv2d}


class MaxPool3x3(nn.Module):
    """3x3 max-pool. padding "same": TensorFlow's rule (the odd pixel at the bottom/right);
    "symmetric": 1 on every side (PyTorch's MaxPool2d(3, stride, 1))."""

    def __init__(self, stride: int, padding: str) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "symmetric":
            return F.max_pool2d(x, 3, self.stride, 1)
        top, bottom = same_padding(x.shape[2], 3, self.stride, 1)
        left, right = same_padding(x.shape[3], 3, self.stride, 1)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, 3, self.stride)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, padding={self.padding!r}"


class Block(nn.Module):
    """reps x ([ReLU] -> SeparableConv2d 3x3 -> BN), then [MaxPool 3x3/stride], plus the skip (unless
    residual=False, the paper's ablation: then no skip path and no skip convolution)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reps: int,
        stride: int,
        dilation: int,
        start_with_relu: bool,
        grow_first: bool,
        pooled: bool,
        separable,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        layers: list[nn.Module] = []
        for i in range(reps):
            if grow_first:
                cin, cout = (in_channels if i == 0 else out_channels), out_channels
            else:
                cin, cout = in_channels, (in_channels if i < reps - 1 else out_channels)
            # The first ReLU must not be in place: the skip reads the block's input.
            layers.append(nn.ReLU(inplace=i > 0))
            layers.append(separable(cin, cout, 3, padding=dilation, dilation=dilation, bias=False))
            layers.append(nn.BatchNorm2d(cout))
        if not start_with_relu:
            layers = layers[1:]
        if pooled:
            layers.append(MaxPool3x3(stride, "same"))
        self.rep = nn.Sequential(*layers)
        if residual and (out_channels != in_channels or stride != 1):
            self.skip = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_channels)
        else:
            self.skip = self.skipbn = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.rep(x)
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


class Xception(nn.Module):
    """See `xception()` for the arguments. forward(x): x (N, in_chans, H, W) with H, W >= 71, NCHW or
    channels_last; returns logits (N, num_classes), pooled features (N, 2048), the feature map
    (N, 2048, H/32, W/32), or with features_only a list of maps (see `feature_info`)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        include_top: bool = True,
        pooling: str | None = "avg",
        drop_rate: float = 0.0,
        output_stride: int = 32,
        backend: str = "xsep",
        compat: str = "keras",
        features_only: bool = False,
        out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
        residual: bool = True,
        intermediate_activation: str = "none",
        segment_channels: int = 1,
    ) -> None:
        super().__init__()
        fn = "xception"
        if backend not in _BACKENDS:
            raise ValueError(f"{fn}: backend must be one of {sorted(_BACKENDS)}; got {backend!r}")
        if compat not in _COMPAT:
            raise ValueError(f"{fn}: compat must be one of {sorted(_COMPAT)}; got {compat!r}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"{fn}: output_stride must be 8, 16 or 32; got {output_stride!r}")
        if pooling not in ("avg", "max", None):
            raise ValueError(f"{fn}: pooling must be 'avg', 'max' or None; got {pooling!r}")
        if include_top and pooling is None:
            raise ValueError(f"{fn}: include_top=True needs pooling 'avg' or 'max'")
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"{fn}: drop_rate must be in [0, 1); got {drop_rate!r}")
        if not set(out_indices) <= set(range(5)):
            raise ValueError(f"{fn}: out_indices must be within 0..4; got {out_indices!r}")
        if not isinstance(segment_channels, int) or segment_channels < 1 or 8 % segment_channels != 0:
            # Every separable conv's input channels (64, 128, 256, 728, 1024, 1536) must split evenly.
            raise ValueError(
                f"{fn}: segment_channels must divide every layer's channels (1, 2, 4 or 8); got {segment_channels!r}"
            )
        separable_cls = _BACKENDS[backend]

        def separable(cin, cout, kernel, **kwargs):
            return separable_cls(
                cin,
                cout,
                kernel,
                intermediate_activation=intermediate_activation,
                segments=cin // segment_channels,
                **kwargs,
            )

        self.residual = residual
        self.intermediate_activation = intermediate_activation
        self.segment_channels = segment_channels
        self.num_classes = num_classes if include_top else 0
        self.include_top = include_top
        self.pooling = pooling
        self.drop_rate = drop_rate
        self.backend = backend
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self.grad_checkpointing = False

        self.conv1 = nn.Conv2d(in_chans, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.act2 = nn.ReLU(inplace=True)

        # Down-sampling past output_stride turns into dilation of everything after it.
        stride_so_far, dilation = 2, 1
        reductions = [2]

        def block(cin, cout, reps, downsample, start_with_relu=True, grow_first=True):
            nonlocal stride_so_far, dilation
            stride = 2 if downsample and stride_so_far < output_stride else 1
            b = Block(cin, cout, reps, stride, dilation, start_with_relu, grow_first, downsample, separable, residual)
            if downsample:
                if stride == 2:
                    stride_so_far *= 2
                else:
                    dilation *= 2
            return b

        self.block1 = block(64, 128, 2, True, start_with_relu=False)
        reductions.append(stride_so_far)
        self.block2 = block(128, 256, 2, True)
        reductions.append(stride_so_far)
        self.block3 = block(256, 728, 2, True)
        for i in range(4, 12):
            setattr(self, f"block{i}", block(728, 728, 3, False))
        reductions.append(stride_so_far)
        self.block12 = block(728, 1024, 2, True, grow_first=False)
        self.conv3 = separable(1024, 1536, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn3 = nn.BatchNorm2d(1536)
        self.act3 = nn.ReLU(inplace=True)
        self.conv4 = separable(1536, 2048, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn4 = nn.BatchNorm2d(2048)
        self.act4 = nn.ReLU(inplace=True)
        reductions.append(stride_so_far)

        self.num_features = 2048
        self.feature_info = [
            {"num_chs": chs, "reduction": red, "module": mod}
            for chs, red, mod in zip(
                (64, 128, 256, 728, 2048), reductions, ("act2", "block2", "block3", "block12", "act4"), strict=True
            )
        ]
        self.fc = nn.Linear(2048, num_classes) if include_top else None
        self.set_compat(compat)

    @property
    def blocks(self) -> list[Block]:
        return [getattr(self, f"block{i}") for i in range(1, 13)]

    def set_compat(self, compat: str) -> None:
        """Switch BN epsilon/momentum and max-pool padding to "keras" or "timm" behaviour."""
        if compat not in _COMPAT:
            raise ValueError(f"Xception.set_compat: compat must be one of {sorted(_COMPAT)}; got {compat!r}")
        cfg = _COMPAT[compat]
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps, m.momentum = cfg["bn_eps"], cfg["bn_momentum"]
            elif isinstance(m, MaxPool3x3):
                m.padding = cfg["pool_padding"]
        self.compat = compat

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward instead of keeping them (training only)."""
        self.grad_checkpointing = enable

    def _run_block(self, block: Block, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[2] < MIN_INPUT or x.shape[3] < MIN_INPUT:
            raise ValueError(
                f"Xception: input must have shape (N, C, H, W) with H, W >= {MIN_INPUT}; got {tuple(x.shape)}"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """The final feature map (N, 2048, H/32, W/32); with features_only, the list of maps at
        `out_indices` (strides 2, 4, 8, 16, 32; see `feature_info`)."""
        self._check_input(x)
        features: list[torch.Tensor] = []
        x = self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))))
        features.append(x)
        for i, block in enumerate(self.blocks, start=1):
            x = self._run_block(block, x)
            # The maps between blocks as the next block sees them (after its leading ReLU).
            if self.features_only and i in (1, 2, 11):
                features.append(F.relu(x))
        x = self.act3(self.bn3(self.conv3(x)))
        x = self.act4(self.bn4(self.conv4(x)))
        features.append(x)
        if self.features_only:
            return [features[i] for i in self.out_indices]
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooling is None:
            return x
        x = x.mean((2, 3)) if self.pooling == "avg" else x.amax((2, 3))
        if self.fc is None:
            return x
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        features = self.forward_features(x)
        return features if self.features_only else self.forward_head(features)


def xception(
    num_classes: int = 1000,
    in_chans: int = 3,
    include_top: bool = True,
    pooling: str | None = "avg",
    drop_rate: float = 0.0,
    output_stride: int = 32,
    backend: str = "xsep",
    compat: str = "keras",
    features_only: bool = False,
    out_indices: tuple[int, ...] = (0, 1, 2, 3, 4),
    residual: bool = True,
    intermediate_activation: str = "none",
    segment_channels: int = 1,
) -> Xception:
    """Xception, as in the paper, on the fused separable convolution.

    Args:
        num_classes: classifier outputs (with include_top).
        in_chans: input channels.
        include_top: global pooling + dropout + the linear classifier. 22,855,952 parameters with
            1000 classes; 20,806,952 without the top.
        pooling: "avg" or "max" global pooling; None returns the (N, 2048, h, w) map (include_top=False).
        drop_rate: dropout before the classifier.
        output_stride: 32, or 16 / 8 with the later down-sampling replaced by dilation (DeepLabV3+).
        backend: "xsep" (fused op) or "reference" (PyTorch's two convs; same parameter names).
        compat: "keras" (BN eps 1e-3, TF "same" max-pools) or "timm" (BN eps 1e-5, pools padded 1).
        features_only / out_indices: return the maps at strides 2, 4, 8, 16, 32 (indices 0..4).
        residual: False drops the skip paths of the 12 blocks (the paper's residual ablation); the
            four 1x1 skip convolutions and their BNs go too: 19,829,880 parameters without the top
            instead of 20,806,952.
        intermediate_activation: "none" (the paper's choice), "relu" or "elu" between the depthwise
            and pointwise part of every separable conv (the paper's Figure 10), fused.
        segment_channels: channels per segment of the spatial convs: 1 = depthwise (Xception); 2, 4
            or 8 move along the paper's spectrum towards regular convolutions (unfused: PyTorch's
            grouped convolutions).

    Input: (N, in_chans, H, W), H and W >= 71, NCHW or channels_last.
    """
    return Xception(
        num_classes,
        in_chans,
        include_top,
        pooling,
        drop_rate,
        output_stride,
        backend,
        compat,
        features_only,
        out_indices,
        residual,
        intermediate_activation,
        segment_channels,
    )
