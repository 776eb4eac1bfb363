"""The benchmark harness: one run per strategy, ASE-NAS+ starting points, resume, statistics, report and plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nni_asenas.comparison import harness, peers
from nni_asenas.comparison.harness import BenchSettings, RunSpec
from nni_asenas.nasbench.nb201 import load_table
from nni_asenas.nasbench.simulator import SimulatedBenchmark

TINY = BenchSettings(max_queries=12)
PEERS = ["random", "evolution", "evolution-nats", "tpe", "local-search", "optuna-tpe", "optuna-tpe-mv"]
OPTUNA = pytest.mark.skipif(peers.optuna_unavailable() is not None, reason="optuna is not installed (the 'peers' extra)")


def needs(strategy: str) -> list:
    return [OPTUNA] if strategy.startswith("optuna") else []


def check_result(result: dict, strategy: str, dataset: str, seed: int, queries: int) -> None:
    """A result dict is the protocol's books, whatever strategy wrote it."""
    table = load_table()
    assert (result["strategy"], result["dataset"], result["seed"], result["signal"]) == (strategy, dataset, seed, "val12")
    assert result["queries"] == len(result["trajectory"]) == queries
    signals = [step["signal"] for step in result["trajectory"]]
    archs = [step["arch"] for step in result["trajectory"]]
    assert signals == [table.signal(arch, dataset) for arch in archs]
    seconds = np.cumsum([table.cost_seconds(arch, dataset) for arch in archs])
    assert [step["simulated_seconds"] for step in result["trajectory"]] == pytest.approx(seconds)
    best = result["best"]
    assert best["signal"] == max(signals)
    assert best["test_accuracy"] == table.test_accuracy(best["arch"], dataset)
    assert result["trajectory"][-1]["best_test_accuracy"] == best["test_accuracy"]
    assert result["decision_ms_per_query"] >= 0 and result["cpu_ms_per_query"] >= 0 and result["wall_seconds"] > 0
    json.dumps(result)  # result.json material


@pytest.mark.parametrize("strategy", [pytest.param(s, marks=needs(s)) for s in PEERS + ["asenas", "asenas-paper"]])
def test_one_tiny_run_per_strategy(strategy):
    result = harness.run_one(strategy, "cifar100", 3, TINY)
    check_result(result, strategy, "cifar100", 3, 12)


def test_asenas_paper_runs_the_paper_preset():
    from nni_asenas.config import PRESETS

    result = harness.run_one("asenas-paper", "cifar10", 0, TINY)
    assert {key: result["settings"][key] for key in PRESETS["paper"].to_dict()} == PRESETS["paper"].to_dict()


@pytest.mark.parametrize("strategy", [pytest.param(s, marks=needs(s))
                                      for s in ["evolution-nats", "tpe", "local-search", "optuna-tpe-mv"]])
def test_peers_are_reproducible_per_seed(strategy):
    first = [s["arch"] for s in harness.run_one(strategy, "cifar10", 5, TINY)["trajectory"]]
    assert first == [s["arch"] for s in harness.run_one(strategy, "cifar10", 5, TINY)["trajectory"]]
    assert first != [s["arch"] for s in harness.run_one(strategy, "cifar10", 6, TINY)["trajectory"]]


def test_tpe_records_how_often_nni_replaced_a_repeated_proposal():
    result = harness.run_one("tpe", "cifar10", 0, BenchSettings(max_queries=60))
    replaced = result["settings"]["duplicates_replaced"]
    assert 0 < replaced < 60  # the first 20 are random start-up draws; then TPE's categorical search repeats itself
    assert len({step["arch"] for step in result["trajectory"]}) == 60  # and NNI never queries a repeat


@OPTUNA
@pytest.mark.parametrize("strategy", ["optuna-tpe", "optuna-tpe-mv", "optuna-gp"])
def test_optuna_repeats_are_answered_from_the_cache_at_no_cost(strategy):
    queries = 40 if strategy != "optuna-gp" else 16  # GPSampler fits its model per ask: keep it short
    result = harness.run_one(strategy, "cifar10", 1, BenchSettings(max_queries=queries))
    archs = [step["arch"] for step in result["trajectory"]]
    assert len(set(archs)) == len(archs) == queries  # a repeat is never queried (nor charged) again
    settings = result["settings"]
    assert settings["asks"] == queries + settings["repeats_answered_from_cache"]
    expected = {"optuna-tpe": "TPESampler", "optuna-tpe-mv": "TPESampler", "optuna-gp": "GPSampler"}[strategy]
    assert settings["class"] == f"optuna.samplers.{expected}"
    if strategy != "optuna-gp":
        assert settings["multivariate"] == settings["group"] == (strategy == "optuna-tpe-mv")


@OPTUNA
def test_optuna_gp_is_reproducible_per_seed():
    first = [s["arch"] for s in harness.run_one("optuna-gp", "cifar10", 3, BenchSettings(max_queries=14))["trajectory"]]
    assert first == [s["arch"] for s in harness.run_one("optuna-gp", "cifar10", 3, BenchSettings(max_queries=14))["trajectory"]]
    assert first[11:] != [s["arch"] for s in harness.run_one("optuna-gp", "cifar10", 4,
                                                              BenchSettings(max_queries=14))["trajectory"]][11:]


def test_local_search_climbs_from_random_starts():
    result = harness.run_one("local-search", "cifar10", 2, BenchSettings(max_queries=60))
    table = load_table()
    codes = [table.op_ids(step["arch"]) for step in result["trajectory"]]
    assert len(set(codes)) == 60
    # after the random start, the next 24 queries are exactly its one-edit neighbours
    assert {sum(a != b for a, b in zip(codes[0], code)) for code in codes[1:25]} == {1}


def test_peers_stop_at_the_simulated_budget():
    result = harness.run_one("random", "cifar10", 0, BenchSettings(budget_seconds=1000.0))
    seconds = [step["simulated_seconds"] for step in result["trajectory"]]
    assert seconds[-2] < 1000.0 <= seconds[-1]  # a query starts while budget is left, none after


def test_rl_runs_or_says_why_not():
    reason = peers.rl_unavailable()
    if reason is None:
        check_result(harness.run_one("rl", "cifar10", 0, TINY), "rl", "cifar10", 0, 12)
    else:
        assert "peers" in reason
        with pytest.raises(RuntimeError, match="rl cannot run"):
            harness.run_one("rl", "cifar10", 0, TINY)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'rea'"):
        harness.run_one("rea", "cifar10", 0, TINY)


def test_asenas_plus_on_cifar10_starts_from_the_resnet_cell():
    assert load_table().index(harness.RESNET_CELL) >= 0
    result = harness.run_one("asenas+", "cifar10", 1, TINY)
    check_result(result, "asenas+", "cifar10", 1, 12)
    assert result["trajectory"][0]["arch"] == harness.RESNET_CELL
    assert result["settings"]["initial_architectures"] == [harness.RESNET_CELL]


def test_asenas_plus_starts_from_the_same_seeds_cifar10_candidates_searched_on_demand():
    source = harness.run_one("asenas", "cifar10", 2, TINY)
    result = harness.run_one("asenas+", "imagenet16-120", 2, TINY)
    check_result(result, "asenas+", "imagenet16-120", 2, 12)
    assert result["settings"]["initial_architectures"] == source["candidates"]
    start = [step["arch"] for step in result["trajectory"][: len(source["candidates"])]]
    assert start == source["candidates"]


def test_asenas_plus_reads_the_cifar10_result_from_the_output(tmp_path):
    table = load_table()
    written = [table.arch_str(7), table.arch_str(8)]
    document = {"signal": "val12", "max_queries": 12, "budget_seconds": 20000.0, "candidates": written}
    path = harness.result_path(tmp_path, "cifar10", "asenas", 4)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(document))
    assert harness.asenas_plus_start("cifar100", 4, TINY, output=tmp_path) == written
    # written under other settings: not used, searched again
    other = BenchSettings(max_queries=13)
    assert harness.asenas_plus_start("cifar100", 4, other, output=tmp_path) != written


def test_plan_runs_puts_the_asenas_plus_sources_first_and_their_users_last():
    runs = harness.plan_runs(["asenas+", "random", "asenas"], ["cifar100", "cifar10"], [0, 1])
    assert len(runs) == 12 and len(set(runs)) == 12
    assert runs[:2] == [RunSpec("asenas", "cifar10", 0), RunSpec("asenas", "cifar10", 1)]
    assert all(r.strategy == "asenas+" and r.dataset == "cifar100" for r in runs[-2:])


def test_run_benchmark_writes_results_and_resumes(tmp_path):
    runs = harness.plan_runs(["random", "tpe"], ["cifar10"], [0, 1])
    done: list[RunSpec] = []
    failures = harness.run_benchmark(tmp_path, runs, TINY, jobs=1, progress=False,
                                   on_done=lambda run, outcome: done.append(run))
    assert failures == {} and sorted(done, key=str) == sorted(runs, key=str)
    for run in runs:
        check_result(json.loads(harness.result_path(tmp_path, run.dataset, run.strategy, run.seed).read_text()),
                     run.strategy, run.dataset, run.seed, 12)
    assert json.loads((tmp_path / "settings.json").read_text())["max_queries"] == 12

    done.clear()
    harness.run_benchmark(tmp_path, runs, TINY, jobs=1, progress=False, on_done=lambda run, outcome: done.append(run))
    assert done == []  # every run was finished
    harness.result_path(tmp_path, "cifar10", "tpe", 1).unlink()
    harness.result_path(tmp_path, "cifar10", "random", 0).write_text("{truncated")
    harness.run_benchmark(tmp_path, runs, TINY, jobs=1, progress=False, on_done=lambda run, outcome: done.append(run))
    assert sorted(done, key=str) == [RunSpec("random", "cifar10", 0), RunSpec("tpe", "cifar10", 1)]
    assert len(harness.load_results(tmp_path, runs)) == 4


def test_run_benchmark_refuses_a_directory_of_other_settings(tmp_path):
    harness.run_benchmark(tmp_path, [], TINY, jobs=1, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        harness.run_benchmark(tmp_path, [], BenchSettings(max_queries=13), jobs=1, progress=False)


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch):
    real = harness.run_one

    def flaky(strategy, dataset, seed, settings, *, output=None):
        if seed == 1:
            raise RuntimeError("table on fire\nsecond line")
        return real(strategy, dataset, seed, settings, output=output)

    monkeypatch.setattr(harness, "run_one", flaky)
    runs = harness.plan_runs(["random"], ["cifar10"], [0, 1, 2])
    failures = harness.run_benchmark(tmp_path, runs, TINY, jobs=1, progress=False)
    assert failures == {RunSpec("random", "cifar10", 1): "RuntimeError: table on fire"}
    assert [r["seed"] for r in harness.load_results(tmp_path, runs)] == [0, 2]


# ------------------------------------------------------------------------------------------------ statistics


def test_describe_stats():
    stats = harness.describe_stats([1.0, 2.0, 3.0, 4.0])
    assert stats["n"] == 4 and stats["mean"] == 2.5
    assert stats["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.18245 * math.sqrt(5 / 3) / 2  # t(0.975, 3 dof)
    assert stats["ci95"] == pytest.approx([2.5 - half, 2.5 + half], rel=1e-5)
    big = harness.describe_stats(list(range(50)))  # t(0.975, 49 dof) = 2.0096
    assert big["ci95"][1] - big["mean"] == pytest.approx(2.0096 * big["std"] / math.sqrt(50), rel=1e-4)
    assert harness.describe_stats([5.0]) == {"n": 1, "mean": 5.0, "std": None, "ci95": None}
    assert harness.describe_stats([]) == {"n": 0, "mean": None, "std": None, "ci95": None}
    assert harness.describe_stats([None, 2.0, 4.0])["mean"] == 3.0  # a run that queried nothing has no pick


def test_compare_is_a_welch_test():
    same = harness.compare([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same == {"delta": 0.0, "p": pytest.approx(1.0)}
    apart = harness.compare([10.0, 11.0, 12.0, 13.0], [1.0, 2.0, 3.0])
    assert apart["delta"] == pytest.approx(11.5 - 2.0) and apart["p"] < 1e-3
    # unequal spreads: t = -4.92 / sqrt(0.007 / 5 + 25 / 3) = -1.70 on ~2.0 Welch dof (pooled: 6 dof, p = 0.058)
    welch = harness.compare([0.0, 0.1, 0.2, 0.1, 0.0], [0.0, 5.0, 10.0])
    assert welch["p"] == pytest.approx(0.230, abs=0.005)
    assert harness.compare([1.0], [1.0, 2.0]) is None and harness.compare([2.0, 2.0], [1.0, 1.0]) is None


def synthetic(strategy: str, seed: int, archs: list[str], dataset: str = "cifar100", **extra) -> dict:
    simulated = SimulatedBenchmark(dataset)
    for arch in archs:
        simulated.query(arch)
    return simulated.result(strategy, seed, decision_ms_per_query=extra.get("ms", 1.0),
                            cpu_ms_per_query=extra.get("cpu", 0.5), wall_seconds=extra.get("wall", 2.0))


def test_summarize_on_synthetic_results():
    table = load_table()
    optimal = table.optimum("cifar100", "signal")[0]
    a, b, c = table.arch_str(100), table.arch_str(2000), table.arch_str(optimal)
    results = [
        synthetic("asenas", 0, [a, b], ms=2.0, wall=1.0, cpu=1.0),
        synthetic("asenas", 1, [c], ms=4.0, wall=3.0, cpu=2.0),
        synthetic("random", 0, [a]),
        synthetic("random", 1, [b, a, c]),
        synthetic("random", 2, [b]),
    ]
    summary = harness.summarize(results)
    assert list(summary) == ["cifar100"]
    info = summary["cifar100"]
    assert info["optimum"]["test_accuracy"] == table.optimum("cifar100")[1]
    assert info["signal_optimum"]["arch"] == c
    picked = {r["strategy"] + str(r["seed"]): r["best"]["test_accuracy"] for r in results}
    asenas, random = info["strategies"]["asenas"], info["strategies"]["random"]
    assert asenas["mean"] == pytest.approx((picked["asenas0"] + picked["asenas1"]) / 2)
    assert random["std"] == pytest.approx(np.std([picked["random0"], picked["random1"], picked["random2"]], ddof=1))
    assert (asenas["n"], random["n"], random["seeds"]) == (2, 3, [0, 1, 2])
    assert random["test_accuracies"] == [picked["random0"], picked["random1"], picked["random2"]]
    assert asenas["queries_mean"] == 1.5 and random["queries_mean"] == pytest.approx(5 / 3)
    assert asenas["found_signal_optimum"] == 0.5 and random["found_signal_optimum"] == pytest.approx(1 / 3)
    optimum = table.signal(c, "cifar100")
    best = {r["strategy"] + str(r["seed"]): r["best"]["signal"] for r in results}
    assert asenas["regrets"] == pytest.approx([optimum - best["asenas0"], 0.0])
    assert asenas["regret"]["mean"] == pytest.approx((optimum - best["asenas0"]) / 2)
    assert random["regret_median"] == pytest.approx(optimum - max(best["random0"], best["random2"]))
    assert random["regret_vs_asenas"]["delta"] == pytest.approx(random["regret"]["mean"] - asenas["regret"]["mean"])
    assert (asenas["decision_ms_per_query"], asenas["cpu_ms_per_query"], random["cpu_ms_per_query"]) == (3.0, 1.5, 0.5)
    assert "vs_asenas" not in asenas
    assert random["vs_asenas"]["delta"] == pytest.approx(random["mean"] - asenas["mean"])
    assert (asenas["wall_seconds"], asenas["wall_seconds_per_run"]) == (4.0, 2.0)


def test_found_counts_ties_of_the_signal_optimum():
    table = load_table()
    signal = table.signal_array("cifar100")
    tied = np.flatnonzero(signal >= signal.max() - harness.FOUND_TOLERANCE)
    assert len(tied) >= 2  # CIFAR-100's 12-epoch optimum is shared
    results = [synthetic("asenas", seed, [table.arch_str(int(i))]) for seed, i in enumerate(tied)]
    entry = harness.summarize(results)["cifar100"]["strategies"]["asenas"]
    assert entry["found_signal_optimum"] == 1.0 and entry["regret"]["mean"] == pytest.approx(0.0, abs=harness.FOUND_TOLERANCE)
    assert harness.signal_regret({"best": None}, 1.0) is None


def test_regret_curve_follows_the_best_signal():
    table = load_table()
    archs = [table.arch_str(i) for i in (7, 300, 12)]
    result = synthetic("asenas", 0, archs, dataset="cifar10")
    optimum = table.optimum("cifar10", "signal")[1]
    times = [step["simulated_seconds"] for step in result["trajectory"]]
    curve = harness.regret_curve(result, np.array([0.0, times[0], times[1], times[2] + 1.0]), optimum)
    bests = np.maximum.accumulate([table.signal(a, "cifar10") for a in archs])
    assert np.isnan(curve[0])  # before the first query ends
    assert curve[1:] == pytest.approx([optimum - bests[0], optimum - bests[1], optimum - bests[2]])


def test_regret_by_budget_share_counts_queries_ended_by_each_share():
    table = load_table()
    archs = [table.arch_str(i) for i in (7, 300, 12, 4000)]
    result = synthetic("asenas", 0, archs, dataset="cifar10")
    optimum = table.optimum("cifar10", "signal")[1]
    times = [step["simulated_seconds"] for step in result["trajectory"]]
    bests = np.maximum.accumulate([table.signal(a, "cifar10") for a in archs])
    result["budget_seconds"] = times[2] / 0.5  # the third query ends at exactly half the budget
    budget = result["budget_seconds"]

    def by(share: float) -> float | None:  # the best of the queries that ended by share x budget
        ended = [i for i in range(4) if times[i] <= share * budget * (1 + 1e-9)]
        return optimum - bests[ended[-1]] if ended else None

    low, half, three_quarters, whole = harness.regret_at_fractions(result, optimum)
    assert half == pytest.approx(optimum - bests[2])
    assert whole == pytest.approx(optimum - bests[3])  # the last query counts at 100 % wherever it ends
    assert (low, three_quarters) == (pytest.approx(by(0.25)) if by(0.25) is not None else None, pytest.approx(by(0.75)))
    # with a query cap the shares are of the queries: 25 % of 4 is the first query
    result["max_queries"] = 4
    assert harness.regret_at_fractions(result, optimum) == pytest.approx(
        [optimum - bests[0], optimum - bests[1], optimum - bests[2], optimum - bests[3]])
    assert harness.regret_at_fractions({"trajectory": [], "budget_seconds": 1.0}, optimum) == [None] * 4


def test_summary_reports_regret_by_budget_with_welch_tests():
    table = load_table()
    optimal = table.arch_str(table.optimum("cifar10", "signal")[0])
    poor = [table.arch_str(i) for i in (7, 300)]
    results = [synthetic("asenas", s, poor + [optimal], dataset="cifar10") for s in (0, 1)]
    results += [synthetic("random", s, poor, dataset="cifar10") for s in (0, 1, 2)]
    for result in results:
        result["max_queries"] = 4
    entries = harness.summarize(results)["cifar10"]["strategies"]
    assert list(entries["asenas"]["regret_at"]) == ["25", "50", "75", "100"]
    assert entries["asenas"]["regret_at"]["100"]["mean"] == pytest.approx(0.0)
    assert entries["asenas"]["regret_at"]["50"]["mean"] == pytest.approx(entries["random"]["regret_at"]["50"]["mean"])
    assert entries["random"]["regret_at"]["100"]["mean"] > 0
    assert "regret_at_vs_asenas" in entries["random"] and "regret_at_vs_asenas" not in entries["asenas"]
    text = harness.summary_markdown(harness.summarize(results))
    assert "## Signal regret by budget" in text and "**0.000**" in text


def test_summarize_refuses_mixed_signals():
    mixed = synthetic("random", 0, [load_table().arch_str(5)])
    mixed["signal"] = "val200"
    with pytest.raises(ValueError, match="mix signals"):
        harness.summarize([synthetic("random", 1, [load_table().arch_str(5)]), mixed])


def test_summary_markdown_has_the_reference_rows():
    table = load_table()
    results = [synthetic("asenas", s, [table.arch_str(100 + s)], dataset=d) for d in ("cifar10", "cifar100") for s in (0, 1)]
    text = harness.summary_markdown(harness.summarize(results), settings=BenchSettings(), command="nni-asenas bench ...")
    assert "| strategy | cifar10 | cifar100 |" in text
    assert "*94.37*" in text and "*73.51*" in text  # the benchmark optima
    assert "*94.23 ± 0.22*" in text and "*73.12 ± 0.61*" in text  # the authors' ASE-NAS / ASE-NAS+
    assert "## cifar100" in text and "nni-asenas bench ..." in text
    assert "## Signal regret and found rate" in text and ("% |" in text)


def test_best_so_far_curve_is_a_step_function_of_simulated_time():
    result = {"trajectory": [{"simulated_seconds": 10.0, "best_test_accuracy": 50.0},
                             {"simulated_seconds": 25.0, "best_test_accuracy": 60.0}]}
    curve = harness.best_so_far_curve(result, np.array([0.0, 9.9, 10.0, 24.0, 25.0, 99.0]))
    assert np.isnan(curve[:2]).all() and curve[2:].tolist() == [50.0, 50.0, 60.0, 60.0]
    assert np.isnan(harness.best_so_far_curve({"trajectory": []}, np.array([1.0]))).all()


def test_plot_curves_writes_a_png(tmp_path):
    table = load_table()
    results = [synthetic(s, seed, [table.arch_str(seed * 7 + i) for i in range(4)], dataset=d)
               for d in ("cifar10", "imagenet16-120") for s in ("asenas", "random") for seed in (0, 1, 2)]
    results.append(synthetic("tpe", 0, [table.arch_str(3)], dataset="cifar10"))  # one run: no spread
    harness.plot_curves(results, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no results"):
        harness.plot_curves([], tmp_path / "none.png")


@pytest.mark.slow
def test_parallel_benchmark_matches_the_in_process_one(tmp_path):
    runs = harness.plan_runs(["asenas", "asenas+", "evolution"], ["cifar10", "cifar100"], [0, 1])
    assert harness.run_benchmark(tmp_path / "pool", runs, TINY, jobs=2, progress=False) == {}
    harness.run_benchmark(tmp_path / "one", runs, TINY, jobs=1, progress=False)
    pooled, single = harness.load_results(tmp_path / "pool", runs), harness.load_results(tmp_path / "one", runs)
    assert len(pooled) == len(runs)
    assert [r["trajectory"] for r in pooled] == [r["trajectory"] for r in single]


def test_the_val200_signal_costs_the_same_as_the_protocol_one():
    table = load_table()
    arch = table.arch_str(6111)
    protocol, converged = SimulatedBenchmark("cifar10"), SimulatedBenchmark("cifar10", signal="val200")
    assert protocol.query(arch) == table.signal(arch, "cifar10")
    assert converged.query(arch) == table.metric_array("cifar10", "val200")[6111] == table.row(arch, "cifar10")["val200"]
    assert converged.simulated_seconds == protocol.simulated_seconds
    assert converged.result("x", 0)["signal"] == "val200"
    with pytest.raises(ValueError, match="unknown signal 'val13'"):
        SimulatedBenchmark("cifar10", signal="val13")
    result = harness.run_one("evolution-nats", "cifar100", 0, BenchSettings(signal="val200", max_queries=5))
    assert [s["signal"] for s in result["trajectory"]] == [
        table.metric_array("cifar100", "val200")[table.index(s["arch"])] for s in result["trajectory"]]
