"""A tiny generated ImageFolder for the ImageNet tests (imported by test modules; ``tests/`` is on sys.path)."""

from __future__ import annotations

from pathlib import Path

import torch

CLASSES = ("ant", "bee", "cat")


def make_image_folder(root: Path, train_per_class: int = 8, val_per_class: int = 4) -> Path:
    """Small non-square JPEGs whose colour depends on the class (so the task is learnable)."""
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for index in range(count):
                noise = torch.randint(0, 60, (20, 26, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray((noise + 90 * label).clamp(max=255).numpy()).save(folder / f"{index}.jpeg")
    return root
