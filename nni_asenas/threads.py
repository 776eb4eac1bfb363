"""One thread for small tensor work: torch's intra-op pool and numpy's BLAS pool both held to one thread.

The searcher's policy and surrogate work on tensors of a few thousand numbers: a thread pool only adds waiting, and
on a busy machine (trials training beside the search) spinning threads slow each call many times over. torch is
limited with :func:`torch.set_num_threads`; numpy's BLAS (OpenBLAS starts its pool for a (32, 64) @ (64, 256)
product) through threadpoolctl, which costs about 10 microseconds a call. Both are put back afterwards, so
the caller's own settings are untouched and no environment variable (``OMP_NUM_THREADS``) is needed.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable, Iterator

import torch
from threadpoolctl import ThreadpoolController

__all__ = ["one_thread", "single_threaded"]

_blas: ThreadpoolController | None = None


def _blas_pools() -> ThreadpoolController:
    """The BLAS libraries loaded in this process (found once: a scan of the loaded libraries takes milliseconds)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController().select(user_api="blas")
    return _blas


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the body with one torch thread and one BLAS thread."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        with _blas_pools().limit(limits=1):
            yield
    finally:
        if threads != 1:
            torch.set_num_threads(threads)


def single_threaded(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``function`` runs under :func:`one_thread`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_thread():
            return function(*args, **kwargs)

    return wrapper
