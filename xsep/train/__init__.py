"""`xsep train`: Xception training on the fused ops (see trainer.py; options in config.py)."""

from xsep.train.config import TrainConfig
from xsep.train.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
