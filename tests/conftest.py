"""Shared fixtures, and the quick tier."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

TESTS = Path(__file__).resolve().parent
#: The quick tier (``pytest -m quick``, under 30 s): what a developer reruns while editing the method, the search
#: loop or the settings. Folders and files, relative to tests/.
QUICK = ("core", "search", "test_config.py", "test_threads.py", "adapters/test_ledger.py", "nasbench/test_simulator.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    quick = [TESTS / entry for entry in QUICK]
    missing = [str(entry) for entry in quick if not entry.exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py QUICK names what does not exist: {', '.join(missing)}")
    for item in items:
        path = Path(str(item.path))
        if any(path == entry or entry in path.parents for entry in quick):
            item.add_marker(pytest.mark.quick)


@pytest.fixture(scope="session")
def benchmark_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The NNI-schema nasbench201 / nasbench101 databases, built once per session (seconds)."""
    from nni_asenas.nasbench import databases

    out = tmp_path_factory.mktemp("benchmark-db")
    return {"nasbench201": databases.build_nasbench201_db(out), "nasbench101": databases.build_nasbench101_db(out)}


@pytest.fixture
def use_benchmark_dbs(benchmark_dbs: dict[str, Path]) -> Iterator[dict[str, Path]]:
    """NNI's benchmark queries read the session's databases during the test, and find them automatically after."""
    from nni_asenas.nasbench import databases

    for name, path in benchmark_dbs.items():
        databases.use_database(name, path)
    yield benchmark_dbs
    for name in benchmark_dbs:
        databases.use_database(name, None)


@pytest.fixture(scope="session")
def ofa_files() -> Path:
    """The folder of OFA's released files (``$NNI_ASENAS_OFA_FILES``); skips where unset, fails in CI."""
    from ofa_files import ofa_files_folder

    return ofa_files_folder()


@pytest.fixture(autouse=True)
def _no_received_nni_parameters() -> Iterator[None]:
    """NNI keeps the parameters a trial received in a module global (``nni.trial._params``); an in-process engine or
    trial in one test would otherwise leak them into the next test's reports (``parameter_id``)."""
    import nni.trial

    saved = getattr(nni.trial, "_params", None)
    nni.trial._params = None  # type: ignore[attr-defined]
    yield
    nni.trial._params = saved  # type: ignore[attr-defined]
