"""``nni-asenas search --space mobilenet --ofa-predictor FILE``: OFA's released predictor (and Note10 latency tables)
as the evaluator of a search, every check before it (the files come through NNI_ASENAS_OFA_FILES)."""

from __future__ import annotations

import json
import shutil

import pytest
from ofa_files import ofa_files_folder

from nni_asenas.cli import app as cli
from nni_asenas.imagenet.limits import madds
from nni_asenas.imagenet.ofa_latency import OfaLatencyTable
from nni_asenas.imagenet.ofa_predictor import OfaAccuracyPredictor


@pytest.fixture(scope="module")
def ofa():
    return ofa_files_folder()


def search(*args: str) -> int:
    return cli.main(["search", "--space", "mobilenet", "--no-progress", *args])


def test_a_search_under_madds_and_latency_limits_writes_a_result_to_fine_tune_from(ofa, tmp_path, capsys):
    out = tmp_path / "out"
    assert search("--ofa-predictor", str(ofa / "acc_predictor.pth"), "--max-queries", "60", "--max-madds", "400e6",
                  "--ofa-latency-tables", str(ofa / "note10"), "--max-latency-ms", "25", "--seed", "3",
                  "--output", str(out)) == 0
    printed = capsys.readouterr().out
    assert "scored by OFA's accuracy predictor: 60 queries" in printed and "Note10 latency of the best" in printed
    result = json.loads((out / "result.json").read_text())
    assert result["queries"] == 60 and result["evaluator"]["kind"] == "ofa-predictor"
    best = result["best"]
    predictor = OfaAccuracyPredictor.from_file(ofa / "acc_predictor.pth")
    assert best["top1"] == pytest.approx(100 * predictor.predict_one(best["arch"]))
    assert best["top1"] == max(entry["top1"] for entry in result["trajectory"] if entry["top1"] is not None)
    assert madds(best["arch"]) <= 400e6 and best["resolution"] == 224
    table = OfaLatencyTable(ofa / "note10")
    assert best["latency_ms"] == pytest.approx(table.latency(best["arch"])) and best["latency_ms"] <= 25
    assert all(madds(e["arch"]) <= 400e6 and table.latency(e["arch"]) <= 25 for e in result["trajectory"])
    assert json.loads((out / "arch.json").read_text()) == best["arch"]  # what the ImageNet trial's --arch reads


def test_the_same_seed_gives_the_same_search_at_another_resolution(ofa, tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        assert search("--ofa-predictor", str(ofa / "acc_predictor.pth"), "--max-queries", "30", "--resolution", "160",
                      "--output", str(tmp_path / name)) == 0
        runs.append(json.loads((tmp_path / name / "result.json").read_text()))
    assert [e["arch"] for e in runs[0]["trajectory"]] == [e["arch"] for e in runs[1]["trajectory"]]
    assert runs[0]["madds_resolution"] == 160 and runs[0]["best"]["resolution"] == 160


def test_the_resolution_searched_as_one_more_decision_stays_within_both_limits(ofa, tmp_path, capsys):
    out = tmp_path / "out"
    assert search("--ofa-predictor", str(ofa / "acc_predictor.pth"), "--resolution", "search", "--max-queries", "60",
                  "--max-madds", "400e6", "--ofa-latency-tables", str(ofa / "note10"), "--max-latency-ms", "30",
                  "--seed", "1", "--output", str(out)) == 0
    assert "(searched; fine-tune it with --img-size" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    trajectory = result["trajectory"]
    assert result["evaluator"]["resolution"] == "search" and result["madds_resolution"] is None
    sizes = {entry["arch"]["resolution"] for entry in trajectory}
    assert len(sizes) > 1 and sizes <= {160, 176, 192, 208, 224}
    table = OfaLatencyTable(ofa / "note10", resolution=None)
    predictor = OfaAccuracyPredictor.from_file(ofa / "acc_predictor.pth", resolution=None)
    for entry in trajectory:  # MAdds and latency at each architecture's own resolution
        assert entry["madds"] == madds(entry["arch"], resolution=None) <= 400e6
        assert table.latency(entry["arch"]) <= 30
    best = result["best"]
    searched = {**best["arch"], "resolution": best["resolution"]}
    assert best["top1"] == pytest.approx(100 * predictor.predict_one(searched))
    assert best["top1"] == max(entry["top1"] for entry in trajectory)
    assert best["latency_ms"] == pytest.approx(table.latency(searched))
    assert json.loads((out / "arch.json").read_text()) == best["arch"]  # the network; its size is --img-size


def test_bad_input_is_one_line_before_any_search(ofa, tmp_path, capsys):
    missing_key = tmp_path / "note10"
    shutil.copytree(ofa / "note10", missing_key)
    table = missing_key / "224_lookup_table.yaml"
    lines = table.read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if line.startswith("Conv_1") or "Conv_1" in line.split(":")[0])
    table.write_text("\n".join(lines[:cut]) + "\n")
    other = tmp_path / "other.pth"
    other.write_bytes(b"not a state dict")
    predictor = str(ofa / "acc_predictor.pth")
    cases = [
        (("--ofa-predictor", str(other)), "other.pth"),
        (("--ofa-predictor", predictor, "--max-madds", "1e8"), "--max-madds 100.0 M is below the smallest network"),
        (("--ofa-predictor", predictor, "--ofa-latency-tables", str(ofa / "note10"), "--max-latency-ms", "5"),
         "latency limit 5 ms is below the fastest network"),
        (("--ofa-predictor", predictor, "--ofa-latency-tables", str(missing_key), "--max-latency-ms", "25"),
         "224_lookup_table.yaml"),
        (("--ofa-predictor", predictor, "--max-latency-ms", "25"), "--max-latency-ms and --ofa-latency-tables"),
        (("--ofa-predictor", predictor, "--resolution", "200"), "--resolution 200 is not one of OFA's"),
        (("--ofa-predictor", predictor, "--resolution", "any"), "--resolution must be one of OFA's"),
        (("--ofa-predictor", predictor, "--resolution", "search", "--max-madds", "9e7"),
         "below the smallest network of the space (100.3 M MAdds at 160 px)"),
    ]
    for args, needle in cases:
        assert search(*args, "--output", str(tmp_path / "never")) == 2, args
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "never").exists()
