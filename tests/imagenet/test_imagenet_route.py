"""The ImageNet route end to end, through the commands docs/imagenet-route.md gives: train a tiny supernet on a
generated ImageFolder, search it under a MAdds limit, fine-tune the winner from the supernet weights."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def rehearsal_commands() -> list[str]:
    text = (REPO / "docs" / "imagenet-route.md").read_text()
    block = re.search(r"<!-- rehearsal:begin -->\s*```bash\n(.*?)```\s*<!-- rehearsal:end -->", text, re.S)
    assert block is not None, "docs/imagenet-route.md lost its rehearsal block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_rehearsal_block_is_the_three_steps() -> None:
    commands = rehearsal_commands()
    assert [c.split()[:3] for c in commands] == [["python", "-m", "nni_asenas.trials.supernet"],
                                                 ["nni-asenas", "search", "--space"],
                                                 ["python", "-m", "nni_asenas.trials.imagenet"]]


@pytest.mark.slow
def test_supernet_search_and_fine_tuning_through_the_documented_commands(image_folder: Path, tmp_path: Path) -> None:
    env = dict(os.environ, DATA=str(image_folder), RUN=str(tmp_path), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    for command in rehearsal_commands():
        command = re.sub(r"^python ", f"{sys.executable} ", command)
        command = re.sub(r"^nni-asenas ", f"{sys.executable} -m nni_asenas.cli ", command)
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=REPO,
                              timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    supernet = json.loads((tmp_path / "supernet" / "results.json").read_text())
    search = json.loads((tmp_path / "search" / "result.json").read_text())
    final = json.loads((tmp_path / "final" / "results.json").read_text())
    assert supernet["epoch"] == 2 and search["queries"] == 8
    assert search["best"]["madds"] <= 40e6 and all(entry["madds"] <= 40e6 for entry in search["trajectory"])
    assert final["madds"] == search["best"]["madds"] and final["params"] == search["best"]["params"]
    assert "weights from the supernet" in (tmp_path / "final" / "log.txt").read_text()
