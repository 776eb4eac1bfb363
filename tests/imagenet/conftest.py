"""Fixtures of the ImageNet-route tests: a tiny generated ImageFolder, and one torch thread per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch

CLASSES = ("ant", "bee", "cat")


def make_image_folder(root: Path, train_per_class: int = 8, val_per_class: int = 2) -> Path:
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


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imagefolder"))


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks on a shared 2-core machine: a second intra-op thread only waits for the first (measured: a
    supernet step took 1 s with one thread and 45 s with two while other jobs ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
