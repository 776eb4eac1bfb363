"""What the tuner does before NNI's 10 s connection limit: importing and constructing it loads neither torch nor the
core searcher (they come with the search space, before the first proposal), and it warns, naming the command, when
the installed NNI lists trials with other trials' parameters. Timings: benchmarks/tuner_startup.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nni_asenas.adapters.tuner import AseNasTuner
from nni_asenas.errors import UsageError
from nni_asenas.nni_tools import nni_patch

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
import nni_asenas.adapters.tuner as module
tuner = module.AseNasTuner(seed=0)
loaded = {name: name in sys.modules for name in ("torch", "nni_asenas.core.searcher")}
tuner.update_search_space(json.load(open(sys.argv[1])))
params = tuner.generate_parameters(0)
print(json.dumps({"constructed": loaded, "proposed": "torch" in sys.modules, "params": params}))
"""


def test_import_and_construction_need_no_torch_until_the_first_proposal() -> None:
    search_space = ROOT / "search_spaces" / "nasbench201.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(search_space)], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["constructed"] == {"torch": False, "nni_asenas.core.searcher": False}
    assert report["proposed"] and set(report["params"]) == set(json.loads(search_space.read_text()))


def test_the_tuner_warns_about_an_unfixed_nni_and_names_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        found = nni_patch.status()
    except UsageError as exc:
        pytest.skip(str(exc))
    if found.state == "unknown":
        pytest.skip(f"the installed NNI is not 3.0: {found.describe()}")
    data = found.path.read_bytes()
    copy = tmp_path / "compat.js"
    copy.write_bytes(nni_patch.original_source(data) if found.state == "patched" else data)
    monkeypatch.setattr(nni_patch, "compat_js_path", lambda: copy)
    with caplog.at_level(logging.WARNING, logger="nni_asenas.adapters.tuner"):
        AseNasTuner(seed=0)
    (record,) = [r for r in caplog.records if "nni-patch" in r.getMessage()]
    assert "nni-asenas nni-patch apply" in record.getMessage() and str(copy) in record.getMessage()
    caplog.clear()
    nni_patch.apply(copy)
    with caplog.at_level(logging.WARNING, logger="nni_asenas.adapters.tuner"):
        AseNasTuner(seed=0)
    assert not [r for r in caplog.records if "nni-patch" in r.getMessage()]
