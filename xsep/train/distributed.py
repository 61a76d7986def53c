"""Many processes: torchrun's environment, the process group, and batch norm synchronised
across processes (PyTorch's SyncBatchNorm runs on GPUs only; this one runs on gloo too)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> Dist:
    """Joins torchrun's process group when launched by it (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values)
    return values


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch: per-channel sums and
    sums of squares are all-reduced (differentiably) over the processes. With one process it is
    plain BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # statistics in at least fp32
        c = x.shape[1]
        # Two passes, as BatchNorm2d itself: the mean, then the mean squared deviation from it
        # (sum(x^2) - n mean^2 would cancel catastrophically in fp32).
        count = torch.tensor([x.numel() // c], dtype=xf.dtype, device=x.device)
        sums = differentiable_all_reduce(torch.cat([xf.sum((0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:c] / total
        centered = xf - mean[None, :, None, None]
        var = differentiable_all_reduce((centered * centered).sum((0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        y = centered * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight.to(xf.dtype)[None, :, None, None] + self.bias.to(xf.dtype)[None, :, None, None]
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d of `module` by DistributedBatchNorm2d, state carried over."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            new = DistributedBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
                device=child.weight.device,
                dtype=child.weight.dtype,
            )
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child)
    return module
