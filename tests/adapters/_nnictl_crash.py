"""A real ``nnictl`` experiment whose NNI manager and dispatcher are killed with SIGKILL mid-run, then
``nnictl resume``-d to its end; reported as JSON (what the REST API lists and what the tuner saved).

Run by ``tests/adapters/test_nnictl_crash.py`` inside a private network namespace, with ``HOME`` and
``NNI_CONFIG_DIR`` pointing into the test's temporary directory::

    python3 tests/adapters/_nnictl_crash.py --config exp.yml --kill-after 6 --kills 2 --output r.json

Each kill comes once ``--kill-after`` more trials have a final metric; the resumed experiment then runs until every
one of its ``maxTrialNumber`` trials has ended. Every wait is bounded; every started experiment is stopped in a
``finally``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _nnictl_scenario import TIMINGS, get, nnictl, start, succeeded_with_metric, wait_for_manager  # noqa: E402


def manager_processes(experiment_id: str) -> list[psutil.Process]:
    """The NNI manager (node) of the experiment and its dispatcher (``python -m nni``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(part.endswith("main.js") for part in cmdline) and experiment_id in cmdline:
            found.append(proc)
            found += [child for child in proc.children(recursive=True)
                      if child.cmdline()[1:3] == ["-m", "nni"]]
    return found


def kill(experiment_id: str) -> list[int]:
    processes = manager_processes(experiment_id)
    if len(processes) != 2:
        raise RuntimeError(f"expected the manager and the dispatcher, found {[p.cmdline() for p in processes]}")
    for proc in processes:
        os.kill(proc.pid, signal.SIGKILL)
    psutil.wait_procs(processes, timeout=30)
    return [proc.pid for proc in processes]


def ended(trials: list[dict[str, Any]]) -> int:
    return sum(1 for t in trials if t.get("status") not in ("WAITING", "RUNNING", "UNKNOWN"))


def run(config: Path, kill_after: int, kills: int, wait_seconds: float) -> dict[str, Any]:
    spec = yaml.safe_load(config.read_text())
    max_trials = int(spec["maxTrialNumber"])
    out: dict[str, Any] = {"kills": []}
    port = start("create", "--config", str(config))
    experiment_id = ""
    try:
        wait_for_manager(port, time.monotonic() + 60)
        experiment_id = get(port, "/api/v1/nni/experiment")["id"]
        for round_ in range(kills):
            target = (round_ + 1) * kill_after
            deadline = time.monotonic() + wait_seconds
            while time.monotonic() < deadline:  # the kill comes while trials run: NNI re-runs them on resume
                trials = get(port, "/api/v1/nni/trial-jobs")
                if succeeded_with_metric(trials) >= target and any(t.get("status") == "RUNNING" for t in trials):
                    break
                time.sleep(0.2)
            trials = get(port, "/api/v1/nni/trial-jobs")
            out["kills"].append({"pids": kill(experiment_id), "finished_before": succeeded_with_metric(trials),
                                 "running_before": sum(1 for t in trials if t.get("status") in ("WAITING", "RUNNING"))})
            port = start("resume", experiment_id)
            wait_for_manager(port, time.monotonic() + 60)
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            status = get(port, "/api/v1/nni/check-status")["status"]
            trials = get(port, "/api/v1/nni/trial-jobs")
            if status == "ERROR" or (status in ("DONE", "NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL") and
                                     len(trials) >= max_trials and ended(trials) == len(trials)):
                break
            time.sleep(1.0)
        time.sleep(3.0)  # the last result reaches the tuner and its checkpoint
        out.update(status=get(port, "/api/v1/nni/check-status"), trials=get(port, "/api/v1/nni/trial-jobs"),
                   metrics=get(port, "/api/v1/nni/metric-data"), experiment=get(port, "/api/v1/nni/experiment"))
    finally:
        nnictl("stop", "--all", timeout=120)
    log_dir = Path(spec["experimentWorkingDirectory"], experiment_id)
    state = torch.load(log_dir / "checkpoint" / "asenas_tuner.pt", weights_only=False)
    records, decisions = state["searcher"]["records"], state["searcher"]["decisions"]
    out["tuner"] = {
        "n_queries": state["n_queries"],
        "ledger": state["ledger"],
        "history": [[{label: options[i] for (label, options), i in zip(decisions.items(), records[rid]["code"])},
                     records[rid]["score"]] for rid in state["searcher"]["history"]],
    }
    dispatcher_log = log_dir / "log" / "dispatcher.log"
    out["dispatcher_warnings"] = [line for line in dispatcher_log.read_text().splitlines()
                                  if "unknown job parameter" in line] if dispatcher_log.is_file() else []
    out["nnictl_seconds"] = TIMINGS
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--kill-after", type=int, default=6, help="trials with a final metric before each kill")
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--wait-seconds", type=float, default=150.0, help="bound on each waiting phase")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    args.output.write_text(json.dumps(run(args.config, args.kill_after, args.kills, args.wait_seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
