"""The training loop of `xsep train`: Xception on the fused op, one process or many (torchrun), with
checkpoints that let an interrupted run continue exactly where it stopped."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from xsep.models import xception
from xsep.train.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from xsep.train.config import RESUME_MUST_MATCH, TrainConfig, validate
from xsep.train.data import Data, epoch_batches, load_data, shard
from xsep.train.distributed import Dist, all_reduce_sum, convert_batchnorm, init_distributed
from xsep.train.report import plot_curves, write_metrics


@dataclass
class TrainResult:
    history: list[dict]  # one row per finished epoch (the rows of metrics.csv)
    step_losses: list[float] = field(default_factory=list)  # this process's loss at every step run
    interrupted_by: int | None = None  # the signal that stopped the run, if any
    model: nn.Module | None = None


class _StopFlag:
    """SIGTERM / SIGINT ask the loop to save a checkpoint and stop after the current step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the handlers alone
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _device(cfg: TrainConfig, d: Dist) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(d.local_rank)
        return torch.device("cuda", d.local_rank)
    return torch.device("cpu")


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases (1-D), as is usual.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


class _Batches:
    """Turns index lists into device batches: resized to image_size, normalised, in the model's
    dtype and memory format."""

    def __init__(self, cfg: TrainConfig, data: Data, device: torch.device, dtype: torch.dtype) -> None:
        self.cfg, self.data, self.device, self.dtype = cfg, data, device, dtype

    def load(self, dataset, index_batches: list[list[int]]):
        # Its own generator: creating the loader must not draw from the global RNG, or a resumed run
        # would see other dropout masks than the run it continues.
        loader = DataLoader(
            dataset, batch_sampler=index_batches, num_workers=self.cfg.workers, generator=torch.Generator()
        )
        for images, labels in loader:
            yield self.prepare(images), labels.to(self.device)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32)
        if x.shape[-1] != self.cfg.image_size or x.shape[-2] != self.cfg.image_size:
            size = (self.cfg.image_size, self.cfg.image_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = ((x - self.data.mean) / self.data.std).to(self.dtype)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _autocast(cfg: TrainConfig, device: torch.device):
    enabled = cfg.amp != "off"
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=enabled)


def _evaluate(model, batches: _Batches, cfg: TrainConfig, d: Dist, device: torch.device) -> dict[str, float]:
    model.eval()
    dataset = batches.data.val
    mine = list(range(d.rank, len(dataset), d.world))
    local = max(1, cfg.batch_size // d.world)
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top-1, top-k, count
    k = min(5, batches.data.num_classes)
    with torch.no_grad(), _autocast(cfg, device):
        if mine:
            for x, y in batches.load(dataset, [mine[i : i + local] for i in range(0, len(mine), local)]):
                logits = model(x).float()
                topk = logits.topk(k, dim=1).indices
                sums += torch.stack(
                    [
                        F.cross_entropy(logits, y, reduction="sum"),
                        (topk[:, 0] == y).sum(),
                        (topk == y[:, None]).any(1).sum(),
                        torch.tensor(len(y), device=device),
                    ]
                ).double()
    all_reduce_sum(sums)
    loss, top1, topk, count = sums.tolist()
    return {"val_loss": loss / count, "val_top1": top1 / count, "val_top5": topk / count}


def _params_in_sync(model: nn.Module) -> bool:
    """Every process holds bitwise the same parameters (checked by gathering a checksum)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    local = torch.stack([flat.sum(), (flat * torch.arange(len(flat), device=flat.device) % 7919).sum()])
    gathered = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training as `cfg` says; returns the per-epoch metrics and per-step losses."""
    validate(cfg)
    d = init_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    device = _device(cfg, d)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    data = load_data(cfg.data, cfg.image_size, cfg.synthetic_size)
    if cfg.batch_size % d.world:
        raise ValueError(f"xsep train: --batch-size {cfg.batch_size} must divide evenly over {d.world} processes")
    steps_per_epoch = len(data.train) // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"xsep train: --batch-size {cfg.batch_size} is larger than the training set ({len(data.train)})"
        )
    total_steps = steps_per_epoch * cfg.epochs

    model = xception(
        data.num_classes,
        data.in_chans,
        drop_rate=cfg.drop_rate,
        backend=cfg.backend,
        residual=cfg.residual,
        intermediate_activation=cfg.intermediate_activation,
        segment_channels=cfg.segment_channels,
    )
    for m in model.modules():  # Keras's BN momentum (0.99) suits long ImageNet runs, not a few hundred steps
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    model = model.to(device=device, dtype=dtype)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if d.world > 1:  # before the optimizer is made: it must hold the replaced BNs' parameters
        convert_batchnorm(model)
    optimizer = _optimizer(cfg, model)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total_steps))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")

    epoch, step_in_epoch, global_step = 0, 0, 0
    history: list[dict] = []
    running = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count of this epoch so far
    config_dict = dataclasses.asdict(cfg)
    if cfg.resume:
        state = load_checkpoint(
            out / "last.pt" if cfg.resume == "auto" else Path(cfg.resume), config_dict, RESUME_MUST_MATCH
        )
        if state["world_size"] != d.world:
            raise ValueError(
                f"xsep train: --resume: the checkpoint was made by {state['world_size']} processes, this run has "
                f"{d.world}: the batches would be split differently"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][d.rank])
        epoch, step_in_epoch, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        history, running = state["history"], state["running"].clone()
        if d.is_main:
            print(f"xsep train: resumed from epoch {epoch + 1}, step {step_in_epoch}/{steps_per_epoch}", flush=True)
    else:
        torch.manual_seed(cfg.seed + d.rank)  # dropout draws differ between processes

    net: nn.Module = model
    if d.world > 1:
        net = DistributedDataParallel(
            convert_batchnorm(model), device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        net = torch.compile(net)
    batches = _Batches(cfg, data, device, dtype)

    def checkpoint(path: Path) -> None:
        states = [None] * d.world
        if d.world > 1:
            dist.all_gather_object(states, rng_state())
        else:
            states = [rng_state()]
        if d.is_main:
            save_atomic(
                {
                    "config": config_dict,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": states,
                    "epoch": epoch,
                    "step_in_epoch": step_in_epoch,
                    "global_step": global_step,
                    "history": history,
                    "running": running,
                    "world_size": d.world,
                },
                path,
            )

    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config_dict, indent=2) + "\n")
        print(
            f"xsep train: {data.name}, {len(data.train)} train / {len(data.val)} val images at "
            f"{cfg.image_size}x{cfg.image_size}, {data.num_classes} classes; backend {cfg.backend}, {device}, "
            f"{d.world} process(es), {cfg.epochs} epochs of {steps_per_epoch} steps",
            flush=True,
        )

    result = TrainResult(history)
    with _StopFlag() as stop:
        while epoch < cfg.epochs:
            net.train()
            order = epoch_batches(len(data.train), cfg.batch_size, cfg.seed, epoch)
            mine = [shard(b, d.rank, d.world) for b in order[step_in_epoch:]]
            progress = None
            if cfg.progress and d.is_main:
                from tqdm import tqdm

                progress = tqdm(
                    total=steps_per_epoch,
                    initial=step_in_epoch,
                    desc=f"epoch {epoch + 1}/{cfg.epochs}",
                    unit="step",
                    mininterval=1.0,
                    dynamic_ncols=True,
                )
            started, images_seen, stopping = time.perf_counter(), 0, False
            for x, y in batches.load(data.train, mine):
                with _autocast(cfg, device):
                    logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step_in_epoch += 1
                global_step += 1
                images_seen += len(y) * d.world
                loss_value = loss.item()
                result.step_losses.append(loss_value)
                running += torch.tensor(
                    [loss_value * len(y), float((logits.argmax(1) == y).sum()), len(y)], dtype=torch.float64
                )
                if progress is not None:
                    done = running.clone()
                    progress.set_postfix(
                        loss=f"{done[0] / done[2]:.3f}",
                        acc=f"{100 * done[1] / done[2]:.1f}%",
                        img_s=f"{images_seen / (time.perf_counter() - started):.1f}",
                        refresh=False,
                    )
                    progress.update()
                flags = torch.tensor([stop.signal or 0, cfg.max_steps and global_step >= cfg.max_steps], device=device)
                if d.world > 1:
                    dist.all_reduce(flags, op=dist.ReduceOp.MAX)  # every process stops at the same step
                stopping = bool(flags.any())
                end_of_epoch = step_in_epoch == steps_per_epoch
                if not end_of_epoch and (stopping or (cfg.ckpt_every and global_step % cfg.ckpt_every == 0)):
                    checkpoint(out / "last.pt")
                if stopping:
                    result.interrupted_by = int(flags[0]) or None
                    break
            if progress is not None:
                progress.close()
            if step_in_epoch < steps_per_epoch:  # stopped inside the epoch: its checkpoint is saved
                break

            seconds = time.perf_counter() - started
            totals = all_reduce_sum(running.to(device)).tolist()
            row = {
                "epoch": epoch + 1,
                "train_loss": totals[0] / totals[2],
                "train_top1": totals[1] / totals[2],
                **_evaluate(net, batches, cfg, d, device),
                "lr": scheduler.get_last_lr()[0],
                "seconds": seconds,
                "images_per_s": images_seen / seconds,
            }
            history.append(row)
            epoch, step_in_epoch = epoch + 1, 0
            running = torch.zeros(3, dtype=torch.float64)
            best = max(r["val_top1"] for r in history) == row["val_top1"]
            checkpoint(out / "last.pt")
            if best:
                checkpoint(out / "best.pt")
            if d.is_main:
                write_metrics(history, out)
                plot_curves(history, out)
                print(
                    f"epoch {row['epoch']}/{cfg.epochs}  train loss {row['train_loss']:.4f} top-1 "
                    f"{100 * row['train_top1']:.2f}%  |  val loss {row['val_loss']:.4f} "
                    f"top-1 {100 * row['val_top1']:.2f}% top-5 {100 * row['val_top5']:.2f}%  |  "
                    f"{seconds:.1f} s, {row['images_per_s']:.1f} img/s",
                    flush=True,
                )
            if stopping:
                result.interrupted_by = int(flags[0]) or None
                break

    if d.world > 1:
        in_sync = _params_in_sync(model)
        if d.is_main:
            (out / "summary.json").write_text(json.dumps({"world_size": d.world, "params_in_sync": in_sync}) + "\n")
        dist.destroy_process_group()
        if not in_sync:
            raise RuntimeError("xsep train: the processes' parameters differ: data-parallel training went wrong")
    result.model = model
    return result
