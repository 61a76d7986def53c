"""Loading Keras's and timm's (Cadene's) Xception weights into `xsep.models.Xception`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xsep.models.xception import Xception
from xsep.nn import SeparableConv2d


def _separables(module: nn.Module) -> list[SeparableConv2d]:
    return [m for m in module.modules() if isinstance(m, SeparableConv2d)]


def _batchnorms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.rep if isinstance(m, nn.BatchNorm2d)]


def keras_layer_map(keras_model: Any, model: Xception) -> list[tuple[Any, nn.Module]]:
    """(Keras layer, module of `model`) pairs, for every layer that holds weights.

    Keras names its layers block1_conv1 ... block14_sepconv2_bn and predictions; Keras's block b
    (2..13) is our block b-1, block14's two separable convs are conv3 / conv4. The residual 1x1
    convs and their BNs have no names in keras.applications, so they pair up in model order.
    """
    layers = {layer.name: layer for layer in keras_model.layers}

    def layer(name: str) -> Any:
        if name not in layers:
            raise ValueError(
                f"load_keras_weights: the Keras model has no layer {name!r}; is it keras.applications.Xception?"
            )
        return layers[name]

    pairs: list[tuple[Any, nn.Module]] = [
        (layer("block1_conv1"), model.conv1),
        (layer("block1_conv1_bn"), model.bn1),
        (layer("block1_conv2"), model.conv2),
        (layer("block1_conv2_bn"), model.bn2),
    ]
    for keras_block, block in enumerate(model.blocks, start=2):
        for i, (sep, bn) in enumerate(zip(_separables(block.rep), _batchnorms(block), strict=True), start=1):
            pairs.append((layer(f"block{keras_block}_sepconv{i}"), sep))
            pairs.append((layer(f"block{keras_block}_sepconv{i}_bn"), bn))
    pairs += [
        (layer("block14_sepconv1"), model.conv3),
        (layer("block14_sepconv1_bn"), model.bn3),
        (layer("block14_sepconv2"), model.conv4),
        (layer("block14_sepconv2_bn"), model.bn4),
    ]
    residual_convs = [k for k in keras_model.layers if type(k).__name__ == "Conv2D" and not k.name.startswith("block")]
    residual_bns = [
        k for k in keras_model.layers if type(k).__name__ == "BatchNormalization" and not k.name.startswith("block")
    ]
    skips = [b for b in model.blocks if b.skip is not None]
    if len(residual_convs) != len(skips) or len(residual_bns) != len(skips):
        raise ValueError(
            f"load_keras_weights: expected {len(skips)} residual convs and BNs in the Keras model; "
            f"found {len(residual_convs)} and {len(residual_bns)}"
        )
    for conv, bn, block in zip(residual_convs, residual_bns, skips, strict=True):
        pairs += [(conv, block.skip), (bn, block.skipbn)]
    if model.fc is not None:
        pairs.append((layer("predictions"), model.fc))
    return pairs


def _assign(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    value_t = torch.as_tensor(np.ascontiguousarray(value))
    if tuple(value_t.shape) != tuple(param.shape):
        raise ValueError(
            f"load_keras_weights: {where}: Keras gives shape {tuple(value_t.shape)}, model has {tuple(param.shape)}"
        )
    with torch.no_grad():
        param.copy_(value_t)


def keras_to_torch(keras_layer: Any, module: nn.Module) -> None:
    """Copy one Keras layer's weights into `module` (Keras kernels are channels-last)."""
    weights = keras_layer.get_weights()
    name = keras_layer.name
    if isinstance(module, SeparableConv2d):  # depthwise (kh, kw, C, M), pointwise (1, 1, C*M, Cout)
        depthwise, pointwise = weights[:2]
        kh, kw, c, m = depthwise.shape
        _assign(module.depthwise_weight, depthwise.reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None], name)
        _assign(module.pointwise_weight, pointwise.transpose(3, 2, 0, 1), name)
    elif isinstance(module, nn.Conv2d):  # (kh, kw, Cin, Cout)
        _assign(module.weight, weights[0].transpose(3, 2, 0, 1), name)
    elif isinstance(module, nn.BatchNorm2d):  # gamma, beta, moving mean, moving variance
        for target, value in zip(
            (module.weight, module.bias, module.running_mean, module.running_var), weights, strict=True
        ):
            _assign(target, value, name)
    elif isinstance(module, nn.Linear):  # (in, out), bias
        _assign(module.weight, weights[0].T, name)
        _assign(module.bias, weights[1], name)
    else:
        raise TypeError(f"load_keras_weights: no rule for {type(module).__name__} (Keras layer {name})")


def torch_bn_to_keras(module: nn.BatchNorm2d, keras_layer: Any) -> None:
    """The reverse for one BN: write module's parameters and running statistics into Keras."""
    keras_layer.set_weights(
        [t.detach().cpu().numpy() for t in (module.weight, module.bias, module.running_mean, module.running_var)]
    )


def _load_keras_model(source: str | os.PathLike, model: Xception) -> Any:
    try:
        import keras
    except ImportError as error:
        raise ImportError(
            "load_keras_weights: reading a Keras file needs keras 3 (pip install keras h5py); "
            "set KERAS_BACKEND=torch if TensorFlow is not installed"
        ) from error
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"load_keras_weights: no such file: {path}")
    if path.name.endswith(".keras"):
        return keras.saving.load_model(path, compile=False)
    if path.name.endswith(".weights.h5"):
        return keras.applications.Xception(
            weights=str(path),
            include_top=model.include_top,
            classes=model.num_classes if model.include_top else 1000,
            classifier_activation=None,
        )
    raise ValueError(f"load_keras_weights: source must be a Keras model, a .keras or a .weights.h5 file; got {path}")


def load_keras_weights(model: Xception, source: Any) -> Xception:
    """Copy the weights of a Keras `keras.applications.Xception` into `model`, in place.

    source: the Keras model object, or a `.keras` / `.weights.h5` file (needs keras installed).
    Switches `model` to Keras behaviour (BN epsilon 1e-3, TensorFlow "same" max-pools), so its
    outputs equal Keras's. Returns `model`.
    """
    if not isinstance(model, Xception):
        raise TypeError(f"load_keras_weights: model must be an xsep Xception; got {type(model).__name__}")
    keras_model = source if hasattr(source, "layers") else _load_keras_model(source, model)
    for keras_layer, module in keras_layer_map(keras_model, model):
        keras_to_torch(keras_layer, module)
    model.set_compat("keras")
    return model


def timm_key_map(model: Xception) -> dict[str, str]:
    """timm/Cadene `legacy_xception` key -> this model's key, for the keys whose names differ
    (their SeparableConv2d holds `conv1` and `pointwise` convs; ours two parameters)."""
    renames = {}
    for name, module in model.named_modules():
        if isinstance(module, SeparableConv2d):
            renames[f"{name}.conv1.weight"] = f"{name}.depthwise_weight"
            renames[f"{name}.pointwise.weight"] = f"{name}.pointwise_weight"
    return renames


def load_timm_weights(model: Xception, state_dict: Mapping[str, torch.Tensor]) -> Xception:
    """Load a timm `legacy_xception` (Cadene's `xception`) state_dict into `model`, in place.

    Every key must match (strict); switches `model` to timm behaviour (BN epsilon 1e-5, max-pools
    padded 1 on every side), so its outputs equal that architecture's. Returns `model`.
    """
    if not isinstance(model, Xception):
        raise TypeError(f"load_timm_weights: model must be an xsep Xception; got {type(model).__name__}")
    renames = timm_key_map(model)
    converted = {renames.get(k, k): v for k, v in state_dict.items()}
    if "last_linear.weight" in converted:  # Cadene's pretrainedmodels calls the classifier last_linear
        converted["fc.weight"] = converted.pop("last_linear.weight")
        converted["fc.bias"] = converted.pop("last_linear.bias")
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"load_timm_weights: the state_dict does not fit this model; missing {sorted(missing)[:8]}, "
            f"unexpected {sorted(unexpected)[:8]}"
        )
    model.set_compat("timm")
    return model
