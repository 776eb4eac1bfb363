"""Bad input to the CLI, run as a user runs it (a new process, Python's default warning filters): exit status 2
and one line on stderr, with no warning before it (NNI's import-time warnings included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "broken.json").write_text('{"bad": 1')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", "from nni_asenas.imagenet.predictor import AccuracyPredictor; "
                    f"AccuracyPredictor().save({str(folder / 'p.pt')!r})"], env=env, check=True, capture_output=True)
    return folder


CASES = [
    (["search", "--init", "{dir}/broken.json", "--max-queries", "20"], "--init: cannot read initial architectures"),
    (["search", "--space", "mobilenet", "--supernet", "{dir}/missing.pth", "--data", "{dir}", "--max-queries", "3"],
     "--supernet {dir}/missing.pth: no such file"),
    (["search", "--space", "mobilenet", "--predictor", "{dir}/p.pt", "--max-madds", "3e7", "--max-queries", "3"],
     "is below the smallest network of the space"),
    (["bench", "--output", "{dir}/bench", "--seeds", "5-1"], "--seeds: range '5-1' is empty"),
    (["query", "|nor_conv_9x9~0|"], "nor_conv_9x9"),
    (["predictor", "train", "{dir}/missing.jsonl", "--output", "{dir}/q.pt"], "does not exist"),
]


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(argv[:3]) for argv, _ in CASES])
def test_bad_input_is_one_line_under_default_warning_filters(files, argv, needle):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-W", "default", "-m", "nni_asenas.cli",
                           *[arg.format(dir=files) for arg in argv]],
                          env=env, capture_output=True, text=True, timeout=300, cwd=files)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("nni-asenas: error: "), done.stderr
    assert needle.format(dir=files) in done.stderr
