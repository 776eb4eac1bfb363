"""NNI lists every trial with the parameters it ran, with ``nni-asenas nni-patch apply``, under real ``nnictl``:
16 trials at concurrency 4 on the local training service, and 8 through ``platform: remote`` (sshd on 127.0.0.1).

The patch is applied to a copy of NNI's node package (its small JavaScript part copied, ``node``, ``node_modules``
and the web UI linked) that nnictl imports first on ``PYTHONPATH``: the installed NNI is never touched. For every
trial the listing (``/api/v1/nni/trial-jobs``, ``nnictl experiment export``) must agree with what the trial ran: its
listed parameter id is the final metric's ``parameterId`` and the metric's own ``parameter_id``, and the listed
architecture is the one whose table row (``nb201_index``) the trial reported. NNI 3.0 without the patch fails this
(4 of 16 trials swapped in a run on 2 cores; 12 of 16 in another).

Both experiments run in private network namespaces (``_nnictl_listing.py`` drives them; NNI's manager listens on all
interfaces). The remote one also needs root and Debian's ``openssh-server`` (``.ci/run`` installs it): sshd listens on
127.0.0.1 only, logs in with a key generated here, and its sessions get ``HOME`` in ``tmp_path``, so NNI's remote
files stay there too.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import load_table
from nni_asenas.nni_tools import nni_patch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent / "_nnictl_listing.py"
LINKED = ("node", "node_modules", "static")  # large and unchanged: linked, not copied
LOCAL_TRIALS, REMOTE_TRIALS, CONCURRENCY = 16, 8, 4
SSHD = Path("/usr/sbin/sshd")


def namespace_problem() -> str | None:
    """Why a private network namespace cannot be made here (None if it can)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip is not installed"
    done = subprocess.run(["unshare", "--net", "ip", "link", "set", "lo", "up"], capture_output=True, text=True,
                          timeout=30)
    return None if done.returncode == 0 else f"unshare --net failed: {done.stderr.strip()}"


@pytest.fixture(scope="module")
def patched_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment whose ``import nni_node`` finds a patched copy of the installed NNI's node package."""
    problem = namespace_problem()
    if problem:
        pytest.skip(f"no private network namespace for NNI's manager: {problem}")
    try:
        installed = nni_patch.compat_js_path().parents[2]
    except UsageError as exc:
        pytest.skip(str(exc))
    shadow = tmp_path_factory.mktemp("nni-shadow")
    shutil.copytree(installed, shadow / "nni_node", ignore=shutil.ignore_patterns("__pycache__", *LINKED))
    for name in LINKED:
        (shadow / "nni_node" / name).symlink_to(installed / name)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "nni_asenas.cli", "nni-patch", "apply"], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode == 2 and "not applicable" in done.stderr:
        pytest.skip(f"the installed NNI is not 3.0: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    status = subprocess.run([sys.executable, "-m", "nni_asenas.cli", "nni-patch", "status"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and str(shadow) in status.stdout
    return env


def experiment_config(tmp_path: Path, name: str, n_trials: int) -> dict[str, Any]:
    """A committed experiment with absolute paths, this Python, a stop rule after n_trials, files in tmp_path."""
    config = yaml.safe_load((ROOT / "experiments" / name).read_text())
    config["searchSpaceFile"] = str(ROOT / "search_spaces" / "nasbench201.json")
    config["trialCodeDirectory"] = str(ROOT)
    config["trialCommand"] = f"{sys.executable} {config['trialCommand'].split(' ', 1)[1]}"
    config["tuner"]["codeDirectory"] = str(ROOT)
    config["tuner"]["classArgs"]["max_queries"] = n_trials
    config["experimentWorkingDirectory"] = str(tmp_path / "experiments")
    assert config["trialConcurrency"] == CONCURRENCY
    return config


def run_scenario(tmp_path: Path, env: dict[str, str], config: dict[str, Any], n_trials: int, *,
                 prelude: str = "", scenario_args: str = "", mount: bool = False) -> dict[str, Any]:
    (tmp_path / "home").mkdir()
    config_path = tmp_path / "experiment.yml"
    config_path.write_text(yaml.safe_dump(config))
    output = tmp_path / "result.json"
    command = (f"{prelude}ip link set lo up && exec {sys.executable} {SCENARIO} --config {config_path} "
               f"--trials {n_trials} --wait-seconds 360 --output {output} {scenario_args}")
    env = {**env, "HOME": str(tmp_path / "home"), "NNI_CONFIG_DIR": str(tmp_path / "nni-config")}
    try:
        done = subprocess.run(["unshare", "--net", *(["--mount"] if mount else []), "bash", "-c", command], env=env,
                              capture_output=True, text=True, timeout=480, cwd=tmp_path)
    finally:  # the scenario stops its experiment itself; this catches one killed by the timeout
        subprocess.run([sys.executable, "-m", "nni.tools.nnictl.nnictl", "stop", "--all"], env=env,
                       capture_output=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, f"scenario failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(output.read_text())
    log = tmp_path / "experiments" / result["experiment_id"] / "log" / "nnimanager.log"
    result["bound_lines"] = log.read_text().count(f"({nni_patch.MARKER})")
    return result


def peak_running(trials: list[dict[str, Any]]) -> int:
    events = sorted([(t["startTime"], 1) for t in trials if "startTime" in t]
                    + [(t["endTime"], -1) for t in trials if "startTime" in t and "endTime" in t])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def assert_listing_is_the_truth(result: dict[str, Any], n_trials: int) -> None:
    assert result["status"]["status"] == "TUNER_NO_MORE_TRIAL" and not result["status"]["errors"], result["status"]
    trials = result["trials"]
    assert len(trials) == n_trials and all(t["status"] == "SUCCEEDED" for t in trials)
    assert result["bound_lines"] == n_trials  # the patched NNI code bound each trial to its parameters
    assert peak_running(trials) >= 2  # trials really started together
    table = load_table()
    finals = {m["trialJobId"]: m for m in result["metrics"] if m["type"] == "FINAL"}
    for trial in trials:
        listed = json.loads(trial["hyperParameters"][0])
        metric = finals[trial["trialJobId"]]
        reported = json.loads(json.loads(metric["data"]))
        assert int(metric["parameterId"]) == listed["parameter_id"] == reported["parameter_id"], trial["trialJobId"]
        assert table.row(listed["parameters"], "cifar10")["index"] == reported["nb201_index"], trial["trialJobId"]
    exported = result["export"]
    assert len(exported) == n_trials
    for entry in exported:
        value = json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
        assert table.row(entry["parameter"], "cifar10")["index"] == value["nb201_index"], entry["trialJobId"]


def test_local_service_lists_what_each_trial_ran(patched_env: dict[str, str], tmp_path: Path) -> None:
    config = experiment_config(tmp_path, "nasbench201-cifar10.yml", LOCAL_TRIALS)
    result = run_scenario(tmp_path, patched_env, config, LOCAL_TRIALS)
    assert_listing_is_the_truth(result, LOCAL_TRIALS)
    print(f"\nlocal: {LOCAL_TRIALS} trials in {result['seconds']} s")


def test_remote_service_lists_what_each_trial_ran(patched_env: dict[str, str], tmp_path: Path) -> None:
    if not SSHD.is_file() or not shutil.which("ssh-keygen"):
        pytest.skip("needs Debian's openssh-server and openssh-client (apt-get install -y openssh-server openssh-client)")
    if os.geteuid() != 0:
        pytest.skip("needs root: sshd with key login and /run/sshd in a private mount namespace")
    keys, remote_home = tmp_path / "ssh", tmp_path / "remote-home"
    keys.mkdir(mode=0o700)
    remote_home.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True, timeout=60)
    shutil.copy(keys / "user_key.pub", keys / "authorized_keys")
    port = 2222  # inside the private namespace nothing else listens
    (keys / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {keys / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        "UsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
        f"SetEnv HOME={remote_home} PIP_NO_INDEX=1\n"  # NNI's files on the 'remote' stay in tmp_path; no pip download
    )
    config = experiment_config(tmp_path, "nasbench201-cifar10-remote.yml", REMOTE_TRIALS)
    config["nniManagerIp"] = "127.0.0.1"
    (machine,) = config["trainingService"]["machineList"]
    machine.update(host="127.0.0.1", port=port, user=getpass.getuser(), sshKeyFile=str(keys / "user_key"),
                   pythonPath=str(Path(sys.executable).parent))
    result = run_scenario(tmp_path, patched_env, config, REMOTE_TRIALS, mount=True,
                          prelude="mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && ",
                          scenario_args=f"--sshd-config {keys / 'sshd_config'} --sshd-port {port}")
    assert_listing_is_the_truth(result, REMOTE_TRIALS)
    (upload,) = remote_home.glob(f"nni-experiments/{result['experiment_id']}/environments/*/upload/trial_code.tgz")
    with tarfile.open(upload) as tar:
        names = set(tar.getnames())
    assert "nni_asenas/data/nb201.npz" in names and "search_spaces/nasbench201.json" in names
    assert not any(n.split("/")[0] in (".git", "tests", "benchmarks") or "__pycache__" in n for n in names)
    print(f"\nremote: {REMOTE_TRIALS} trials in {result['seconds']} s, {upload.stat().st_size / 1e6:.1f} MB uploaded")
