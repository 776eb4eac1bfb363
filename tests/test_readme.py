"""The README is a front door: under 200 lines, its quickstarts run as written, and no path in it or in docs/ is
dead."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "benchmarks" / "README.md", ROOT / "CHANGELOG.md"]


def _blocks(markdown: str, heading_prefix: str) -> list[tuple[str, str, str]]:
    """(heading, language, code) of every fenced block under a level-2 heading starting with ``heading_prefix``."""
    found, heading = [], ""
    for part in re.split(r"^(## .*)$", markdown, flags=re.M):
        if part.startswith("## "):
            heading = part[3:]
        elif heading.startswith(heading_prefix):
            found += [(heading, lang, code) for lang, code in re.findall(r"^```(\w*)\n(.*?)^```", part, flags=re.M | re.S)]
    return found


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text()
    assert text.count("\n") < 200
    assert text.split("\n")[2:5] == ["```bash", "pip install -e . && nni-asenas search",
                                     "pip install -e '.[test]' && pytest"]
    assert "## How it compares" in text and "| **ASE-NAS** (package defaults) |" in text


def test_three_quickstarts():
    headings = {heading for heading, _, _ in _blocks(README.read_text(), "Quickstart")}
    assert headings == {"Quickstart: the searcher", "Quickstart: NasExperiment", "Quickstart: nnictl and the web UI"}


@pytest.mark.parametrize("heading", ["Quickstart: the searcher", "Quickstart: NasExperiment"])
def test_a_python_quickstart_runs_as_written(heading, tmp_path):
    code = next(code for h, lang, code in _blocks(README.read_text(), "Quickstart") if h == heading and lang == "python")
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), "the quickstart prints its result"


def test_the_nnictl_quickstart_names_files_that_exist_and_the_slow_test_runs_that_experiment():
    code = next(code for h, lang, code in _blocks(README.read_text(), "Quickstart") if h.startswith("Quickstart: nnictl"))
    configs = re.findall(r"nnictl create --config (\S+)", code)
    assert configs and all((ROOT / config).is_file() for config in configs)
    assert "nni-asenas nni-patch apply" in code
    slow_test = (ROOT / "tests" / "adapters" / "test_nnictl.py").read_text()
    assert all(Path(config).name in slow_test for config in configs)


_TOP = {p.name for p in ROOT.iterdir()} | {".ci"}
_PACKAGE = {p.name for p in (ROOT / "nni_asenas").iterdir()}


def _cited_paths(text: str) -> set[str]:
    """Repository paths a document cites: markdown link targets and `code` spans that look like paths from the
    repository root (or from nni_asenas/, as docs/method.md's `core/searcher.py`)."""
    cited = set(re.findall(r"\]\(([^)#\s]+)", text))
    for span in re.findall(r"`([^`\s]+)`", text):
        if "/" in span and re.fullmatch(r"[\w.\-/]+", span) and span.split("/")[0] in _TOP | _PACKAGE:
            cited.add(span)
    return {c for c in cited if not c.startswith(("http://", "https://", "mailto:"))}


@pytest.mark.parametrize("document", [README, *DOCS], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_dead_paths(document):
    missing = []
    for cited in sorted(_cited_paths(document.read_text())):
        candidates = [document.parent / cited, ROOT / cited, ROOT / "nni_asenas" / cited]
        if not any(c.exists() for c in candidates):
            missing.append(cited)
    assert not missing, f"{document.name} cites paths that do not exist: {missing}"
