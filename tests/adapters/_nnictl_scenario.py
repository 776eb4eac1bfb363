"""Real ``nnictl`` runs, reported as JSON: create -> poll -> export -> stop -> resume -> poll -> stop, then a fresh
experiment with ``max_queries`` that must end in the tuner's stop rule.

Run by ``tests/adapters/test_nnictl.py`` inside a private network namespace (only a loopback exists there, and NNI's manager
listens on all interfaces), with ``HOME`` and ``NNI_CONFIG_DIR`` pointing into the test's temporary directory::

    python3 tests/adapters/_nnictl_scenario.py --config exp.yml --min-trials 12 --min-resumed 8 --stop-after 6 --output r.json

Every wait is bounded; every started experiment is stopped in a ``finally``. The JSON holds what the REST API
returned; the test makes the assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

NNICTL = [sys.executable, "-m", "nni.tools.nnictl.nnictl"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str, attempts: int = 3) -> Any:
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
                body = response.read().decode("utf-8")
            return json.loads(body) if path.startswith("/api/") else body
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)


TIMINGS: list[tuple[str, float]] = []  # (nnictl subcommand, seconds)


def nnictl(*args: str, timeout: float = 120) -> str:
    started = time.monotonic()
    done = subprocess.run([*NNICTL, *args], capture_output=True, text=True, timeout=timeout, check=False)
    TIMINGS.append((args[0], round(time.monotonic() - started, 1)))
    if done.returncode != 0:
        raise RuntimeError(f"nnictl {' '.join(args)} exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return done.stdout + done.stderr


def start(*args: str, attempts: int = 3) -> int:
    """``nnictl create|resume ARGS --port P`` on a free port; the port. NNI's launcher now and then fails to reach
    the manager it just started ("Create experiment failed"): stop what it left and try again on another port."""
    for attempt in range(attempts):
        port = free_port()
        try:
            nnictl(*args, "--port", str(port))
            return port
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                nnictl("stop", "--all", timeout=120)
    raise AssertionError("unreachable")


def succeeded_with_metric(trials: list[dict[str, Any]]) -> int:
    return sum(1 for t in trials if t.get("status") == "SUCCEEDED" and t.get("finalMetricData"))


def poll(port: int, done: Callable[[str, list[dict[str, Any]]], bool], deadline: float) -> dict[str, Any]:
    """Poll the REST API until ``done(status, trials)`` (or an error, or the deadline); return what it shows then."""
    while time.monotonic() < deadline:
        status = get(port, "/api/v1/nni/check-status")["status"]
        if status == "ERROR" or done(status, get(port, "/api/v1/nni/trial-jobs")):
            break
        time.sleep(1.0)
    return {
        "status": get(port, "/api/v1/nni/check-status"),
        "trials": get(port, "/api/v1/nni/trial-jobs"),
        "metrics": get(port, "/api/v1/nni/metric-data"),
        "experiment": get(port, "/api/v1/nni/experiment"),
    }


def wait_for_manager(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            get(port, "/api/v1/nni/check-status", attempts=1)
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"the NNI manager did not answer on port {port}")


def at_least(n: int) -> Callable[[str, list[dict[str, Any]]], bool]:
    return lambda status, trials: succeeded_with_metric(trials) >= n


def run(config: Path, min_trials: int, min_resumed: int, stop_after: int, wait_seconds: float, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    started = time.monotonic()
    port = start("create", "--config", str(config))
    try:
        wait_for_manager(port, time.monotonic() + 60)
        out["experiment_id"] = experiment_id = get(port, "/api/v1/nni/experiment")["id"]
        out["webui_html"] = get(port, "/")[:200]
        out["first"] = poll(port, at_least(min_trials), time.monotonic() + wait_seconds)
        out["first_seconds"] = time.monotonic() - started
        export = workdir / "export.json"
        nnictl("experiment", "export", experiment_id, "--filename", str(export), "--type", "json")
        out["export"] = json.loads(export.read_text())
    finally:
        nnictl("stop", "--all", timeout=120)

    started = time.monotonic()
    port = start("resume", experiment_id)
    try:
        wait_for_manager(port, time.monotonic() + 60)
        n_before = succeeded_with_metric(out["first"]["trials"])
        out["resumed"] = poll(port, at_least(n_before + min_resumed), time.monotonic() + wait_seconds)
        out["resumed_seconds"] = time.monotonic() - started
    finally:
        nnictl("stop", "--all", timeout=120)

    # the tuner's stop rule: a fresh experiment with max_queries ends in TUNER_NO_MORE_TRIAL
    limited = yaml.safe_load(config.read_text())
    limited["tuner"]["classArgs"]["max_queries"] = stop_after
    config = workdir / "stop-rule.yml"
    config.write_text(yaml.safe_dump(limited))
    port = start("create", "--config", str(config))
    try:
        wait_for_manager(port, time.monotonic() + 60)

        def finished(status: str, trials: list[dict[str, Any]]) -> bool:
            ended = sum(1 for t in trials if t.get("status") not in ("WAITING", "RUNNING", "UNKNOWN"))
            return status == "TUNER_NO_MORE_TRIAL" and ended >= stop_after

        out["stop_rule"] = poll(port, finished, time.monotonic() + wait_seconds)
        time.sleep(5.0)  # time for a wrongly issued extra trial to show up
        out["stop_rule"]["trials"] = get(port, "/api/v1/nni/trial-jobs")
    finally:
        nnictl("stop", "--all", timeout=120)
    out["nnictl_seconds"] = TIMINGS
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--min-trials", type=int, default=12)
    parser.add_argument("--min-resumed", type=int, default=8)
    parser.add_argument("--stop-after", type=int, default=6, help="max_queries of the stop-rule experiment")
    parser.add_argument("--wait-seconds", type=float, default=150.0, help="bound on each polling phase")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    result = run(args.config, args.min_trials, args.min_resumed, args.stop_after, args.wait_seconds, args.output.parent)
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
