"""A real ``nnictl create`` of experiments/nasbench201-cifar10.yml, polled through NNI's REST API, exported, stopped,
resumed and stopped again; then the same experiment with ``max_queries`` runs into the tuner's stop rule
(``tests/adapters/_nnictl_scenario.py`` drives it; this file makes the assertions).

NNI's manager listens on all interfaces, so the run happens in a private network namespace that only has a
loopback (``unshare --net``, which needs root or user namespaces; the test is skipped where neither works).
``HOME``, ``NNI_CONFIG_DIR`` and ``experimentWorkingDirectory`` point into ``tmp_path``: nothing is written to ``~``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent / "_nnictl_scenario.py"
METRIC_KEYS = {"default", "test_accuracy", "params_M", "flops_M", "simulated_seconds", "nb201_index", "parameter_id"}
MIN_TRIALS, MIN_RESUMED, STOP_AFTER, CONCURRENCY = 12, 8, 6, 4


def isolation_problem() -> str | None:
    """Why a private network namespace cannot be made here (None if it can)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    try:
        done = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare --net failed: {exc}"
    return None if done.returncode == 0 else f"unshare --net failed: {done.stderr.strip()}"


def write_config(tmp_path: Path) -> Path:
    """The committed CIFAR-10 experiment, with absolute paths, this Python, and a working directory in tmp_path."""
    config = yaml.safe_load((ROOT / "experiments" / "nasbench201-cifar10.yml").read_text())
    config["searchSpaceFile"] = str(ROOT / "search_spaces" / "nasbench201.json")
    config["trialCodeDirectory"] = str(ROOT)
    config["trialCommand"] = config["trialCommand"].replace("python3", sys.executable, 1)
    config["tuner"]["codeDirectory"] = str(ROOT)
    config["experimentWorkingDirectory"] = str(tmp_path / "experiments")
    config["tuner"]["classArgs"]["n_initial"] = CONCURRENCY  # a short random start: the search runs within the test
    assert config["trialConcurrency"] == CONCURRENCY
    path = tmp_path / "experiment.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def final_metrics(metric_data: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """parameter id -> final metric. The metric's parameter id is the one its trial really ran (NNI's trial listing
    may show another trial's parameters, microsoft/nni#5726)."""
    return {int(m["parameterId"]): json.loads(json.loads(m["data"])) for m in metric_data if m["type"] == "FINAL"}


def listed_parameters(trials: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(json.loads(t["hyperParameters"][0])["parameters"], sort_keys=True) for t in trials]


def peak_running(trials: list[dict[str, Any]]) -> int:
    events = sorted(
        [(t["startTime"], 1) for t in trials if "startTime" in t]
        + [(t["endTime"], -1) for t in trials if "startTime" in t and "endTime" in t]
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    problem = isolation_problem()
    if problem:
        pytest.skip(f"no private network namespace for NNI's manager: {problem}")
    tmp_path = tmp_path_factory.mktemp("nnictl")
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NNI_CONFIG_DIR": str(tmp_path / "nni-config")}
    (tmp_path / "home").mkdir()
    output = tmp_path / "result.json"
    command = (
        f"ip link set lo up && exec {sys.executable} {SCENARIO} --config {write_config(tmp_path)} "
        f"--min-trials {MIN_TRIALS} --min-resumed {MIN_RESUMED} --stop-after {STOP_AFTER} --wait-seconds 120 "
        f"--output {output}"
    )
    try:
        done = subprocess.run(["unshare", "--net", "bash", "-c", command], env=env, capture_output=True, text=True,
                              timeout=420, cwd=tmp_path)
    finally:  # the scenario stops its experiments itself; this catches a scenario killed by the timeout
        subprocess.run([sys.executable, "-m", "nni.tools.nnictl.nnictl", "stop", "--all"], env=env,
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(output.read_text())


def test_create_runs_concurrent_trials_with_metrics_in_the_web_ui(scenario: dict[str, Any]) -> None:
    first = scenario["first"]
    assert first["status"]["status"] != "ERROR" and not first["status"]["errors"]
    assert "<html" in scenario["webui_html"].lower()
    succeeded = [t for t in first["trials"] if t["status"] == "SUCCEEDED"]
    assert len(succeeded) >= MIN_TRIALS
    assert peak_running(first["trials"]) >= 2  # trialConcurrency 4: trials overlap
    finals = final_metrics(first["metrics"])
    assert len(finals) >= MIN_TRIALS and all(set(m) == METRIC_KEYS for m in finals.values())
    assert all(m["parameter_id"] == pid for pid, m in finals.items())  # each names what it ran, patched NNI or not
    periodical = [m for m in first["metrics"] if m["type"] == "PERIODICAL"]
    assert len(periodical) >= 2 * MIN_TRIALS  # the 12- and 200-epoch points of each trial
    span_minutes = (max(t["endTime"] for t in succeeded) - min(t["startTime"] for t in first["trials"])) / 60000
    print(f"\n{len(succeeded)} trials succeeded in {span_minutes:.2f} min ({len(succeeded) / span_minutes:.1f} trials/min)")


def test_search_improves_on_its_initial_candidates(scenario: dict[str, Any]) -> None:
    finals = final_metrics(scenario["first"]["metrics"])
    initial = [finals[pid]["default"] for pid in sorted(finals)[:CONCURRENCY]]  # the random start
    assert max(m["default"] for m in finals.values()) > max(initial)


def test_export_lists_every_finished_trial(scenario: dict[str, Any]) -> None:
    exported = scenario["export"]
    assert len(exported) >= MIN_TRIALS
    for entry in exported:
        assert set(entry["parameter"]) == {"0_1", "0_2", "1_2", "0_3", "1_3", "2_3"}
        value = json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
        assert set(value) == METRIC_KEYS


def test_resume_continues_without_repeating_architectures(scenario: dict[str, Any]) -> None:
    first, resumed = scenario["first"], scenario["resumed"]
    assert resumed["status"]["status"] != "ERROR" and not resumed["status"]["errors"]
    assert resumed["experiment"]["id"] == scenario["experiment_id"]
    assert {t["trialJobId"] for t in first["trials"]} <= {t["trialJobId"] for t in resumed["trials"]}
    n_first = sum(1 for t in first["trials"] if t["status"] == "SUCCEEDED")
    assert sum(1 for t in resumed["trials"] if t["status"] == "SUCCEEDED") >= n_first + MIN_RESUMED
    parameters = listed_parameters(resumed["trials"])
    assert len(parameters) == len(set(parameters))


def test_stop_rule_ends_the_experiment_in_no_more_trial(scenario: dict[str, Any]) -> None:
    stop_rule = scenario["stop_rule"]
    assert stop_rule["status"]["status"] == "TUNER_NO_MORE_TRIAL" and not stop_rule["status"]["errors"]
    assert len(stop_rule["trials"]) == STOP_AFTER
    assert all(t["status"] == "SUCCEEDED" for t in stop_rule["trials"])
    print(f"nnictl command seconds: {scenario['nnictl_seconds']}")
