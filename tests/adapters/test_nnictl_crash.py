"""``nnictl resume`` after a crash: a real experiment (experiments/nasbench201-cifar10.yml, concurrency 2, 16 trials)
whose NNI manager and dispatcher are killed with SIGKILL twice while trials run, each time resumed
(``tests/adapters/_nnictl_crash.py`` drives it; this file makes the assertions). The resumed tuner is made slow to
take its search space (``_slow_start_tuner.py``), so that the trials NNI re-runs at once report before it is ready,
the race in which NNI's dispatcher used to drop their results.

Every trial with a final metric in NNI's REST API must reach the search exactly once (the tuner's saved state counts
what the API lists), and no proposal may be left waiting for a trial NNI never ran.

Like ``test_nnictl.py``, this runs in a private network namespace (``unshare --net``) with ``HOME`` and
``NNI_CONFIG_DIR`` in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_nnictl import ROOT, isolation_problem

from nni_asenas.nasbench.nb201 import load_table

pytestmark = pytest.mark.slow

CRASH = Path(__file__).resolve().parent / "_nnictl_crash.py"
TRIALS, CONCURRENCY, KILL_AFTER, KILLS = 16, 2, 5, 2


def write_config(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "experiments" / "nasbench201-cifar10.yml").read_text())
    config["searchSpaceFile"] = str(ROOT / "search_spaces" / "nasbench201.json")
    config["trialCodeDirectory"] = str(ROOT)
    # trials of about 4 s, so that each kill finds some running
    config["trialCommand"] = config["trialCommand"].replace("python3", sys.executable, 1) + " --sleep-scale 0.03"
    config["tuner"] = {"className": "_slow_start_tuner.SlowStartTuner", "codeDirectory": str(CRASH.parent),
                       "classArgs": {**config["tuner"]["classArgs"], "n_initial": 4}}
    config.update(trialConcurrency=CONCURRENCY, maxTrialNumber=TRIALS,
                  experimentWorkingDirectory=str(tmp_path / "experiments"))
    path = tmp_path / "experiment.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def crash(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    problem = isolation_problem()
    if problem:
        pytest.skip(f"no private network namespace for NNI's manager: {problem}")
    tmp_path = tmp_path_factory.mktemp("nnictl-crash")
    (tmp_path / "home").mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "NNI_CONFIG_DIR": str(tmp_path / "nni-config"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    output = tmp_path / "result.json"
    command = (f"ip link set lo up && exec {sys.executable} {CRASH} --config {write_config(tmp_path)} "
               f"--kill-after {KILL_AFTER} --kills {KILLS} --wait-seconds 150 --output {output}")
    try:
        done = subprocess.run(["unshare", "--net", "bash", "-c", command], env=env, capture_output=True, text=True,
                              timeout=480, cwd=tmp_path)
    finally:
        subprocess.run([sys.executable, "-m", "nni.tools.nnictl.nnictl", "stop", "--all"], env=env,
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, f"crash scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(output.read_text())


def test_each_kill_found_trials_running(crash: dict[str, Any]) -> None:
    assert len(crash["kills"]) == KILLS
    assert all(kill["running_before"] >= 1 for kill in crash["kills"]), crash["kills"]


def test_the_resumed_experiment_runs_to_its_end(crash: dict[str, Any]) -> None:
    assert crash["status"]["status"] == "DONE" and not crash["status"]["errors"]
    assert len(crash["trials"]) == TRIALS and all(t["status"] == "SUCCEEDED" for t in crash["trials"])


def test_every_evaluated_architecture_reaches_the_search_exactly_once(crash: dict[str, Any]) -> None:
    table = load_table()
    finals = [json.loads(json.loads(m["data"])) for m in crash["metrics"] if m["type"] == "FINAL"]
    evaluated = [metric["nb201_index"] for metric in finals]
    assert len(evaluated) == TRIALS and len(set(evaluated)) == TRIALS  # nothing NNI ran was run twice
    searched = [table.row(arch, "cifar10")["index"] for arch, _ in crash["tuner"]["history"]]
    assert sorted(searched) == sorted(evaluated)
    assert crash["tuner"]["n_queries"] == TRIALS
    scores = {table.row(arch, "cifar10")["index"]: score for arch, score in crash["tuner"]["history"]}
    assert all(scores[metric["nb201_index"]] == pytest.approx(metric["default"]) for metric in finals)
    assert crash["dispatcher_warnings"] == []


def test_no_proposal_waits_for_a_trial_nni_never_ran(crash: dict[str, Any]) -> None:
    """Proposals still unanswered at the end are only those made after NNI's last trial was issued (at most one
    request's worth); none is from before a kill."""
    unanswered = [pid for pid, _ in crash["tuner"]["ledger"]["unanswered"]]
    assert len(unanswered) <= CONCURRENCY
    assert all(pid >= TRIALS for pid in unanswered), unanswered
