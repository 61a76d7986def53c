"""The training data: scikit-learn's digits (shipped inside that package, no download), a synthetic
set, or the user's ImageFolder tree; and the deterministic order batches are drawn in.

Every dataset yields (image in [0, 1], label) at its own resolution; the training loop resizes
and normalises whole batches on the device. The batch order of epoch e is a permutation seeded by
(seed, e) alone, so a resumed run draws exactly the batches the interrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Data:
    train: Dataset
    val: Dataset
    num_classes: int
    in_chans: int
    mean: float
    std: float
    name: str


def _split(n: int, val_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    # A fixed split (not tied to --seed): the held-out set is the same for every run.
    order = torch.randperm(n, generator=torch.Generator().manual_seed(20170404))
    n_val = round(n * val_fraction)
    return order[n_val:], order[:n_val]


def digits() -> Data:
    """scikit-learn's 1797 handwritten digits, 8x8 grey levels 0..16; 80% train, 20% held out."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("xsep train: --data default needs scikit-learn (pip install scikit-learn)") from error
    raw = load_digits()
    images = torch.as_tensor(raw.images, dtype=torch.float32)[:, None] / 16.0
    labels = torch.as_tensor(raw.target, dtype=torch.long)
    train, val = _split(len(labels))
    return Data(
        TensorDataset(images[train], labels[train]),
        TensorDataset(images[val], labels[val]),
        num_classes=10,
        in_chans=1,
        mean=float(images.mean()),
        std=float(images.std()),
        name="digits",
    )


def synthetic(size: int) -> Data:
    """Random 3x32x32 images with random labels: for throughput runs only (nothing to learn)."""
    g = torch.Generator().manual_seed(7)
    images = torch.rand(size, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (size,), generator=g)
    n_val = max(1, size // 8)
    return Data(
        TensorDataset(images[n_val:], labels[n_val:]),
        TensorDataset(images[:n_val], labels[:n_val]),
        num_classes=10,
        in_chans=3,
        mean=0.5,
        std=0.29,
        name="synthetic",
    )


class ImageFolder(Dataset):
    """root/<class>/<image> (classes sorted by name), decoded with Pillow to RGB at image_size."""

    def __init__(self, root: Path, image_size: int, classes: list[str] | None = None) -> None:
        try:
            from PIL import Image  # noqa: F401
        except ImportError as error:
            raise ImportError("xsep train: reading an image folder needs Pillow (pip install pillow)") from error
        self.root = root
        self.image_size = image_size
        self.classes = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            if (root / name).is_dir()
            for path in sorted((root / name).rglob("*"))
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise ValueError(f"xsep train: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}/<class>/")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as img:
            img = img.convert("RGB").resize((self.image_size, self.image_size), Image.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        return data.view(self.image_size, self.image_size, 3).permute(2, 0, 1).float() / 255.0, label


def image_folder(root: str, image_size: int) -> Data:
    path = Path(root)
    if not (path / "train").is_dir() or not (path / "val").is_dir():
        raise ValueError(f"xsep train: --data {root}: expected the folders {path / 'train'} and {path / 'val'}")
    train = ImageFolder(path / "train", image_size)
    val = ImageFolder(path / "val", image_size, classes=train.classes)
    return Data(train, val, num_classes=len(train.classes), in_chans=3, mean=0.45, std=0.226, name=str(path))


def load_data(name: str, image_size: int, synthetic_size: int) -> Data:
    if name == "default":
        return digits()
    if name == "synthetic":
        return synthetic(synthetic_size)
    return image_folder(name, image_size)


def epoch_batches(n: int, global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The training batches of one epoch: a permutation seeded by (seed, epoch), cut into full
    global batches (the remainder is dropped, so every process gets the same number of steps)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()
    return [order[i : i + global_batch] for i in range(0, n - global_batch + 1, global_batch)]


def shard(batch: list[int], rank: int, world: int) -> list[int]:
    """This process's contiguous share of a global batch."""
    local = len(batch) // world
    return batch[rank * local : (rank + 1) * local]
