"""One real ``nnictl create``, run until N trials have ended; prints what NNI lists for them, as JSON.

Run by ``tests/adapters/test_nnictl_listing.py`` inside a private network namespace (only a loopback exists there,
and NNI's manager listens on all interfaces)::

    python tests/adapters/_nnictl_listing.py --config exp.yml --trials 16 --output result.json [--sshd-config FILE]

With ``--sshd-config`` it first starts ``sshd -D -f FILE`` (the machine of ``platform: remote``) and stops it at the
end. Every wait is bounded; the experiment and sshd are stopped in ``finally``. The JSON holds what the REST API and
``nnictl experiment export`` returned; the test makes the assertions.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

NNICTL = [sys.executable, "-m", "nni.tools.nnictl.nnictl"]
ENDED = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as response:
        return json.loads(response.read().decode("utf-8"))


def nnictl(*args: str, timeout: float = 120) -> None:
    done = subprocess.run([*NNICTL, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nnictl {' '.join(args)} exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}")


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def create(config: Path, attempts: int = 3) -> int:
    """``nnictl create`` on a free port; returns the port. NNI's launcher gives its node manager about 3 s to answer,
    which a loaded machine can miss (nnictl then stops it and says "Create experiment failed"): that is retried."""
    for attempt in range(attempts):
        port = free_port()
        try:
            nnictl("create", "--config", str(config), "--port", str(port))
            return port
        except RuntimeError as exc:
            if "Create experiment failed" not in str(exc) or attempt == attempts - 1:
                raise
            print(f"nnictl create: the manager did not answer in time; retrying ({exc!s:.200})", file=sys.stderr)
            time.sleep(2.0)
    raise AssertionError("unreachable")


def run_experiment(config: Path, n_trials: int, wait_seconds: float, workdir: Path) -> dict[str, Any]:
    started = time.monotonic()
    port = create(config)
    try:
        deadline = time.monotonic() + wait_seconds
        wait_for_port(port, deadline)
        status = "INITIALIZED"
        while time.monotonic() < deadline:
            status = get(port, "/api/v1/nni/check-status")["status"]
            ended = [t for t in get(port, "/api/v1/nni/trial-jobs") if t.get("status") in ENDED]
            if status == "ERROR" or len(ended) >= n_trials:
                break
            time.sleep(1.0)
        time.sleep(2.0)  # the last final metrics
        out: dict[str, Any] = {
            "status": get(port, "/api/v1/nni/check-status"),
            "trials": get(port, "/api/v1/nni/trial-jobs"),
            "metrics": get(port, "/api/v1/nni/metric-data"),
            "experiment_id": get(port, "/api/v1/nni/experiment")["id"],
        }
        export = workdir / "export.json"
        nnictl("experiment", "export", out["experiment_id"], "--filename", str(export), "--type", "json")
        out["export"] = json.loads(export.read_text())
        out["seconds"] = round(time.monotonic() - started, 1)
        return out
    finally:
        nnictl("stop", "--all")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--trials", type=int, required=True, help="wait until this many trials have ended")
    parser.add_argument("--wait-seconds", type=float, default=300.0)
    parser.add_argument("--sshd-config", type=Path, help="start sshd -D -f FILE first (its Port must be free)")
    parser.add_argument("--sshd-port", type=int, default=22)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    sshd = None
    if args.sshd_config:
        log = open(args.output.with_name("sshd.log"), "w")  # noqa: SIM115 (closed with sshd below)
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(args.sshd_config)], stdout=log, stderr=log)
    try:
        if sshd is not None:
            wait_for_port(args.sshd_port, time.monotonic() + 30)
        result = run_experiment(args.config, args.trials, args.wait_seconds, args.output.parent)
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=30)
            log.close()
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
