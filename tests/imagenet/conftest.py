"""Fixtures of the ImageNet-route tests: a tiny generated ImageFolder, and one torch thread per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import torch
from imagefolder_data import make_image_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imagefolder"), val_per_class=2)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny networks on a shared 2-core machine: a second intra-op thread only waits for the first (measured: a
    supernet step took 1 s with one thread and 45 s with two while other jobs ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
