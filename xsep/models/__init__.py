"""Networks built on the fused op: Xception, and loaders for Keras's and timm's weights."""

from xsep.models.weights import load_keras_weights, load_timm_weights
from xsep.models.xception import Xception, xception

__all__ = ["Xception", "load_keras_weights", "load_timm_weights", "xception"]
