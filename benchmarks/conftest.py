"""pytest-benchmark runs of the benchmarks (see test_layers.py); cuDNN picks its fastest algorithms."""

import torch

torch.backends.cudnn.benchmark = True
