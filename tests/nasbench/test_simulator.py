import json

import pytest

from nni_asenas.nasbench.nb201 import load_table
from nni_asenas.nasbench.simulator import SimulatedBenchmark, read_initial_architectures, run_asenas
from nni_asenas.search.result import MEASURED_KEYS, RESULT_KEYS

VOLATILE = MEASURED_KEYS


def stable(result):
    return {k: v for k, v in result.items() if k not in VOLATILE}


def test_benchmark_books_follow_the_protocol():
    table = load_table()
    bench = SimulatedBenchmark("cifar100", budget_seconds=1000)
    spent = 0.0
    for index in (6111, 9930, 857, 0, 1):
        if bench.done:
            break
        assert bench.query(index) == table.signal(index, "cifar100")
        spent += table.cost_seconds(index, "cifar100")
    assert bench.simulated_seconds == pytest.approx(spent)
    assert bench.done and bench.simulated_seconds - bench.trajectory[-1]["simulated_seconds"] == 0
    assert len(bench.trajectory) == 1 or bench.trajectory[-2]["simulated_seconds"] < 1000  # a query starts only under budget
    result = bench.result("manual", seed=0)
    best = max(bench.trajectory, key=lambda t: t["signal"])
    assert result["best"]["arch"] == best["arch"]
    assert result["best"]["test_accuracy"] == table.test_accuracy(best["arch"], "cifar100")
    assert result["optimum"]["index"] == 9930


def test_cost_is_twelve_two_hundredths_of_the_full_training():
    table = load_table()
    assert table.cost_seconds(0, "cifar10") == pytest.approx(1444.2185997962952 * 12 / 200)


def test_asenas_run_is_reproducible_and_respects_the_budget():
    a = run_asenas("imagenet16-120", seed=5, budget_seconds=15000)
    b = run_asenas("imagenet16-120", seed=5, budget_seconds=15000)
    assert json.dumps(stable(a)) == json.dumps(stable(b))
    c = run_asenas("imagenet16-120", seed=6, budget_seconds=15000)
    assert stable(c)["trajectory"] != stable(a)["trajectory"]
    times = [t["simulated_seconds"] for t in a["trajectory"]]
    assert times[-2] < 15000 <= times[-1] == a["simulated_seconds"]
    assert len({t["arch"] for t in a["trajectory"]}) == a["queries"]  # never the same architecture twice
    assert a["best"]["signal"] == max(t["signal"] for t in a["trajectory"])
    assert a["best"]["arch"] in a["candidates"]
    assert set(RESULT_KEYS) <= set(a) and a["failed_queries"] == 0  # the shared result.json schema
    assert [t["query"] for t in a["trajectory"]] == list(range(1, a["queries"] + 1))


def test_max_queries_and_initial_architectures():
    start = ["|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"]
    result = run_asenas("cifar10", seed=0, max_queries=12, initial_architectures=start)
    assert result["queries"] == 12 and result["strategy"] == "asenas+"
    assert result["trajectory"][0]["arch"] == start[0]


def test_initial_architectures_from_a_result_file(tmp_path):
    previous = run_asenas("cifar10", seed=1, max_queries=10)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(previous))
    assert read_initial_architectures([str(path), "334131"]) == previous["candidates"] + [load_table().arch_str("334131")]
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json"):
        read_initial_architectures([str(tmp_path / "broken.json")])
    (tmp_path / "other.json").write_text('{"best": 1}')
    with pytest.raises(ValueError, match="no 'candidates' list"):
        read_initial_architectures([str(tmp_path / "other.json")])
    with pytest.raises(ValueError, match="initial architecture 'nonsense'"):
        read_initial_architectures(["nonsense"])
