"""A bench that is stopped, however it is stopped (SIGKILL included), leaves no worker behind and writes nothing
more; what it wrote stays valid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _results(out: Path) -> list[Path]:
    return sorted(out.rglob("result.json"))


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
def test_a_sigkilled_bench_leaves_no_worker_and_writes_nothing_after(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    bench = subprocess.Popen(
        [sys.executable, "-m", "nni_asenas.cli", "bench", "--output", str(out), "--strategies", "asenas,random",
         "--dataset", "cifar10", "--seeds", "0-199", "--jobs", "2", "--no-progress"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(_results(out)) < 3 and time.monotonic() < deadline and bench.poll() is None:
            time.sleep(0.2)
        assert len(_results(out)) >= 3, "the bench did not get going"
        bench.send_signal(signal.SIGKILL)
        bench.wait(timeout=30)
        time.sleep(1.0)
        written = _results(out)
        deadline = time.monotonic() + 20
        while _alive(bench.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(bench.pid), "bench workers outlived the bench"
        assert _results(out) == written  # nothing written after the kill
        for path in written:
            assert "best" in json.loads(path.read_text())  # what was written stays whole
        assert not list(out.rglob("*.partial"))
    finally:
        try:
            os.killpg(bench.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
