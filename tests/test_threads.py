import pytest
import torch
from threadpoolctl import threadpool_info

from nni_asenas.threads import one_thread, single_threaded


def blas_threads():
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_one_thread_holds_torch_and_blas_to_one_thread_and_puts_them_back():
    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
        assert all(n == 1 for n in blas_threads())
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


def test_single_threaded_restores_the_settings_when_the_function_raises():
    torch_before, blas_before = torch.get_num_threads(), blas_threads()

    @single_threaded
    def fails():
        assert torch.get_num_threads() == 1
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before
