"""AseNas as an NNI strategy: NNI's benchmark spaces, constraints, failures, concurrency, checkpoints."""

from __future__ import annotations

import json
import math
import pickle
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import nni
import pytest
import torch
from nni.mutable import Categorical, CategoricalMultiple, ExpressionConstraint, Numerical
from nni.nas.benchmark import BenchmarkModelSpace, NasBench101Benchmark, NasBench201Benchmark
from nni.nas.benchmark.evaluator import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace
from nni.nas.execution import ExecutionEngine, SequentialExecutionEngine, TrainingServiceExecutionEngine
from nni.nas.execution.event import FinalMetricEvent, TrainingEndEvent
from nni.nas.hub.pytorch import NasBench101, NasBench201
from nni.nas.space import ExecutableModelSpace, ModelStatus

from nni_asenas import AseNas
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import load_table
from nni_asenas.nni_tools.compat import CheckpointSerializer


class FormulaBenchmark(BenchmarkEvaluator):
    """A benchmark evaluator whose "table" is a formula on the sample (NNI's way to benchmark without PyTorch)."""

    def __init__(self, space: SlimBenchmarkSpace, score: Callable[[dict[str, Any]], Any]) -> None:
        super().__init__()
        self.space = space
        self.score = score

    def default_space(self) -> SlimBenchmarkSpace:  # type: ignore[override]
        return self.space

    def evaluate(self, sample: dict[str, Any]) -> Any:
        value = self.score(sample)
        nni.report_final_result(value)
        return value


def formula_space(score: Callable[[dict[str, Any]], Any], *mutables: Any) -> BenchmarkModelSpace:
    return BenchmarkModelSpace(FormulaBenchmark(SlimBenchmarkSpace({m.label: m for m in mutables}), score))


def grid_space(score: Callable[[dict[str, Any]], Any], n_labels: int = 4, n_values: int = 5) -> BenchmarkModelSpace:
    return formula_space(score, *(Categorical(list(range(n_values)), label=f"x{i}") for i in range(n_labels)))


def sample_key(sample: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in sample.items()))


@pytest.fixture(scope="module")
def nb201_space() -> BenchmarkModelSpace:
    return BenchmarkModelSpace.from_model(NasBench201(), NasBench201Benchmark(num_epochs=12, dataset="cifar100"))


# ------------------------------------------------------------------------------------------- NNI's benchmark spaces


def test_nasbench201_search_improves_and_never_repeats(use_benchmark_dbs, nb201_space):
    strategy = AseNas(seed=0, n_initial=20)
    engine = SequentialExecutionEngine(max_model_count=60)
    strategy(nb201_space, engine)

    models = list(engine.list_models())
    assert len(models) == 60 and all(m.status == ModelStatus.Trained for m in models)
    assert len({sample_key(m.sample) for m in models}) == 60
    history = strategy.searcher.history
    assert {o.kind for o in history[:20]} == {"random"} and {o.kind for o in history[20:]} <= {"search", "fallback", "restart"}
    initial_best = max(o.score for o in history[:20])  # the random start
    assert strategy.searcher.best.score > initial_best

    table = load_table()
    for model in models[:5]:  # the metric is the table's 12-epoch validation accuracy, as a fraction
        arch = {label.split("/")[1]: op for label, op in model.sample.items()}
        assert model.metric == pytest.approx(table.column("c100_val12")[table.index(arch)] / 100)
    top = list(strategy.list_models(limit=5))
    assert [m.metric for m in top] == sorted((m.metric for m in models), reverse=True)[:5]
    assert top[0].metric == pytest.approx(strategy.searcher.best.score)


def test_nasbench101_space_never_submits_a_constraint_violation(use_benchmark_dbs):
    # The hub space with a small network: the same search space (NasBench101Benchmark validates it), built fast.
    hub = NasBench101(stem_out_channels=8, num_stacks=1, num_modules_per_stack=1)
    space = BenchmarkModelSpace.from_model(hub, NasBench101Benchmark(num_epochs=108))

    class CountingAseNas(AseNas):
        rejected = 0

        def _is_valid(self, arch: dict[str, Any]) -> bool:
            valid = super()._is_valid(arch)
            self.rejected += not valid
            return valid

    strategy = CountingAseNas(seed=0)
    # Cells outside the 20k-cell subset fail to evaluate (the query finds nothing): the search goes on.
    engine = SequentialExecutionEngine(max_model_count=40, continue_on_failure=True)
    strategy(space, engine)

    models = list(engine.list_models())
    assert len(models) == 40
    assert strategy.rejected > 0  # the edge constraint did reject proposals...
    for model in models:  # ...and none of them was submitted
        sample = model.sample
        num_nodes = sample["cell/num_nodes"]
        assert sum(len(sample[f"cell/input{i}"]) for i in range(1, num_nodes)) <= 9
        space.freeze({k: v for k, v in sample.items() if k != "cell/final"})
    assert len({sample_key(m.sample) for m in models}) == 40
    statuses = [m.status for m in models]
    assert ModelStatus.Trained in statuses and ModelStatus.Failed in statuses
    assert [o.score is None for o in strategy.searcher.history] == [s == ModelStatus.Failed for s in statuses]


# ------------------------------------------------------------------------------------------- spaces, constraints


def test_expression_constraint_rejects_before_submission():
    a, b, c = (Categorical(list(range(5)), label=name) for name in "abc")
    space = formula_space(lambda s: s["a"] * 3 + s["b"] - s["c"], a, b, c, ExpressionConstraint(a + b + c <= 5, label="budget"))
    strategy = AseNas(seed=1)
    engine = SequentialExecutionEngine(max_model_count=200)
    strategy(space, engine)
    samples = [m.sample for m in engine.list_models()]
    assert all(s["a"] + s["b"] + s["c"] <= 5 for s in samples)
    n_valid = sum(1 for x in range(5) for y in range(5) for z in range(5) if x + y + z <= 5)
    assert len({sample_key(s) for s in samples}) == len(samples) == n_valid  # every valid cell once, then stop


def test_categorical_multiple_spaces_are_searched():
    pick = CategoricalMultiple(["p", "q", "r"], n_chosen=1, label="pick")
    subset = CategoricalMultiple([1, 2, 3, 4], n_chosen=None, label="subset")
    space = formula_space(lambda s: len(s["subset"]) + (s["pick"] == ["q"]), pick, subset)
    strategy = AseNas(seed=0, k=2, n_steps=2)
    engine = SequentialExecutionEngine(max_model_count=48)
    strategy(space, engine)
    assert len(engine.list_models()) == 48  # 3 x 2^4 architectures, each once
    assert strategy.searcher.best.score == 5
    assert list(strategy.list_models(limit=1))[0].sample == {"pick": ["q"], "subset": [1, 2, 3, 4]}


def test_numerical_mutable_is_refused_at_initialisation():
    space = formula_space(lambda s: 0.0, Categorical([1, 2], label="width"), Numerical(0.0, 0.5, label="dropout_rate"))
    with pytest.raises(UsageError, match="'dropout_rate'"):
        AseNas().initialize(space, SequentialExecutionEngine(max_model_count=1))


# ------------------------------------------------------------------------------------------- failures


def test_failed_and_nan_trials_are_survived():
    def score(sample: dict[str, Any]) -> Any:
        if sample["x0"] == 0:
            raise RuntimeError("this trial crashes")
        if sample["x1"] == 0:
            return math.nan
        if sample["x2"] == 0:
            return {"default": 1.0, "loss": 3.0}  # a dict metric is read at "default"
        return sum(sample.values())

    strategy = AseNas(seed=2)
    engine = SequentialExecutionEngine(max_model_count=80, continue_on_failure=True)
    strategy(grid_space(score), engine)

    models = list(engine.list_models())
    assert len(models) == 80 and len({sample_key(m.sample) for m in models}) == 80
    told = {sample_key(strategy._codec.to_sample(o.arch)): o.score for o in strategy.searcher.history}
    crashed = [m for m in models if m.sample["x0"] == 0]
    nan = [m for m in models if m.sample["x0"] and m.sample["x1"] == 0]
    dict_metric = [m for m in models if m.sample["x0"] and m.sample["x1"] and m.sample["x2"] == 0]
    assert crashed and nan and dict_metric
    assert all(m.status == ModelStatus.Failed and told[sample_key(m.sample)] is None for m in crashed)
    assert all(told[sample_key(m.sample)] is None for m in nan)  # no reward for NaN
    assert all(told[sample_key(m.sample)] == 1.0 for m in dict_metric)
    assert strategy.searcher.best.score > 1.0


# ------------------------------------------------------------------------------------------- concurrency


class ThreadedEngine(ExecutionEngine):
    """Trains models on worker threads and reports from them, in any order, several in flight at once.

    A score function that raises is a failed trial. ``swap_ends`` mimics NNI 3.0's local training service under
    concurrency (microsoft/nni#5693): a trial's end is reported for a random model still waiting for its end
    (maybe one still training), while metrics always name the model that was trained.
    """

    def __init__(self, score: Callable[[dict[str, Any]], float], max_model_count: int, workers: int = 3,
                 seed: int = 0, swap_ends: bool = False):
        super().__init__()
        self.score = score
        self.max_model_count = max_model_count
        self.workers = workers
        self.swap_ends = swap_ends
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(workers)
        self._cond = threading.Condition()
        self._running = 0
        self._futures: list[Future] = []
        self._waiting_for_end: list[ExecutableModelSpace] = []
        self.history: list[ExecutableModelSpace] = []
        self.peak_in_flight = 0
        self.callback_threads: set[int] = set()

    def submit_models(self, *models: ExecutableModelSpace) -> None:
        for model in models:
            with self._cond:
                self._running += 1
                self.peak_in_flight = max(self.peak_in_flight, self._running)
                self._waiting_for_end.append(model)
            model.status = ModelStatus.Training
            self.history.append(model)
            self._futures.append(self._pool.submit(self._train, model, self._rng.uniform(0.0, 0.02)))

    def _train(self, model: ExecutableModelSpace, delay: float) -> None:
        time.sleep(delay)
        self.callback_threads.add(threading.get_ident())
        try:
            metric = self.score(model.sample)
        except RuntimeError:
            status = ModelStatus.Failed
        else:
            status = ModelStatus.Trained
            self.dispatch_model_event(FinalMetricEvent(model, metric))
        with self._cond:
            ended = self._rng.choice(self._waiting_for_end) if self.swap_ends else model
            self._waiting_for_end.remove(ended)
            self._running -= 1
            self._cond.notify_all()
        self.dispatch_model_event(TrainingEndEvent(ended, status))

    def idle_worker_available(self) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._running < self.workers, timeout=0.5)

    def budget_available(self) -> bool:
        return len(self.history) < self.max_model_count

    def wait_models(self, *models: ExecutableModelSpace) -> None:
        for future in list(self._futures):
            future.result()

    def list_models(self, status: ModelStatus | None = None) -> list[ExecutableModelSpace]:
        return [m for m in self.history if status is None or m.status == status]

    def shutdown(self) -> None:
        self._pool.shutdown()

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


def test_callbacks_from_other_threads_with_several_models_in_flight():
    score = lambda s: float(s["x0"] * 7 + s["x1"] * 3 - (s["x2"] - 2) ** 2 + s["x3"])  # noqa: E731
    engine = ThreadedEngine(score, max_model_count=60, workers=3)
    strategy = AseNas(seed=4)
    strategy(grid_space(score), engine)
    engine.shutdown()

    assert engine.peak_in_flight == 3
    assert threading.get_ident() not in engine.callback_threads
    assert len(engine.history) == 60 and len({sample_key(m.sample) for m in engine.history}) == 60
    assert strategy.searcher.n_pending == 0 and len(strategy.searcher.history) == 60
    assert strategy.state_dict()["ledger"]["unanswered"] == [] and strategy.state_dict()["num_running_models"] == 0
    scores = sorted((score(m.sample) for m in engine.history), reverse=True)
    assert [m.metric for m in strategy.list_models(limit=3)] == scores[:3]


def test_results_follow_metrics_when_trial_ends_name_other_models():
    def score(sample: dict[str, Any]) -> float:
        if sample["x0"] == 1:
            raise RuntimeError("crashed trial")
        return float(sample["x0"] * 5 + sample["x1"] * 2 + sample["x2"] - sample["x3"])

    engine = ThreadedEngine(score, max_model_count=50, workers=3, seed=1, swap_ends=True)
    strategy = AseNas(seed=5)
    strategy(grid_space(score), engine)
    engine.shutdown()

    told = {sample_key(strategy._codec.to_sample(o.arch)): o.score for o in strategy.searcher.history}
    assert len(told) == 50 and strategy.searcher.n_pending == 0
    crashed = 0
    for model in engine.history:
        if model.sample["x0"] == 1:
            crashed += 1
            assert told[sample_key(model.sample)] is None
        else:
            assert told[sample_key(model.sample)] == score(model.sample)
    assert crashed > 0


# ------------------------------------------------------------------------------------------- checkpoints


def _run(strategy: AseNas, space: ExecutableModelSpace, n: int, state: dict | None = None) -> list[dict]:
    engine = SequentialExecutionEngine(max_model_count=n)
    strategy.initialize(space, engine)
    if state is not None:
        strategy.load_state_dict(state)
    strategy.run()
    return [m.sample for m in engine.list_models()]


def test_state_dict_round_trip_continues_identically(use_benchmark_dbs, nb201_space, tmp_path):
    whole = _run(AseNas(seed=3), nb201_space, 30)

    first = AseNas(seed=3)
    head = _run(first, nb201_space, 18)
    CheckpointSerializer().save(first.state_dict(), tmp_path / "state")  # through a file, as NasExperiment does
    second = AseNas(seed=3)
    tail = _run(second, nb201_space, 12, CheckpointSerializer().load(tmp_path / "state"))

    assert head + tail == whole
    assert [m.sample for m in second.list_models(sort=False)] == whole  # models from before the reload included


def test_state_dict_keeps_models_in_flight_for_resubmission():
    space = grid_space(lambda s: float(sum(s.values())))
    strategy = AseNas(seed=0)
    strategy.initialize(space, SequentialExecutionEngine(max_model_count=5))
    model = strategy._next_submission()  # submitted, result not back yet
    state = strategy.state_dict()
    assert [arch for _, arch in state["ledger"]["unanswered"]] == [strategy._codec.to_arch(model.sample)]

    resumed = AseNas(seed=0)
    engine = SequentialExecutionEngine(max_model_count=5)
    resumed.initialize(space, engine)
    resumed.load_state_dict(state)
    resumed.run()
    samples = [m.sample for m in engine.list_models()]
    assert samples[0] == model.sample  # the model in flight is evaluated first, under its proposal id
    assert len({sample_key(s) for s in samples}) == 5 and resumed.searcher.n_pending == 0


class InterruptedNasBench201(NasBench201Benchmark):
    """NAS-Bench-201 queries that record what they evaluate; the n-th evaluation is a Ctrl-C (a user stopping)."""

    interrupt_at: int | None = None
    calls = 0
    evaluated: list[dict[str, Any]] = []
    interrupted: dict[str, Any] | None = None

    def evaluate(self, sample: dict[str, Any]) -> Any:
        cls = InterruptedNasBench201
        cls.calls += 1
        if cls.calls == cls.interrupt_at:
            cls.interrupted = dict(sample)
            raise KeyboardInterrupt
        cls.evaluated.append(dict(sample))
        return super().evaluate(sample)


@pytest.fixture
def nni_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """NNI's experiment manifest (normally ~/nni-experiments/.experiment) in a temporary directory."""
    from nni.tools.nnictl import config_utils

    home = tmp_path / "nni-home"
    monkeypatch.setattr(config_utils.Experiments.__init__, "__defaults__", (str(home),))
    return home


@pytest.mark.filterwarnings("ignore:It would be better to use BenchmarkModelSpace:UserWarning")
def test_nas_experiment_stops_and_resumes_without_losing_or_repeating(use_benchmark_dbs, nni_manifest, tmp_path):
    from nni.nas.experiment import NasExperiment, NasExperimentConfig

    config = NasExperimentConfig("sequential", "simplified")
    config.max_trial_number = 20
    config.experiment_working_directory = str(tmp_path / "experiments")

    def experiment() -> NasExperiment:
        evaluator = InterruptedNasBench201(num_epochs=12, dataset="cifar100")
        return NasExperiment(NasBench201(stem_out_channels=4, num_modules_per_stack=1), evaluator, AseNas(seed=1),
                             config=config, id="asenas-resume")

    InterruptedNasBench201.interrupt_at, InterruptedNasBench201.calls = 8, 0
    InterruptedNasBench201.evaluated = []
    experiment().run()  # Ctrl-C during the 8th model: NNI stops the experiment and saves a checkpoint
    before = list(InterruptedNasBench201.evaluated)
    assert len(before) == 7

    checkpoint = tmp_path / "experiments" / "asenas-resume" / "checkpoint" / "state.ckpt.torch"
    with pytest.raises(pickle.UnpicklingError):  # what NNI's own serializer does under torch >= 2.6
        torch.load(checkpoint)

    InterruptedNasBench201.interrupt_at, InterruptedNasBench201.evaluated = None, []
    resumed = experiment()
    resumed.resume()
    try:
        after = list(InterruptedNasBench201.evaluated)
        top = resumed.export_top_models(top_k=19, formatter="dict")
    finally:
        resumed.stop()
    # NNI counts the interrupted model against max_trial_number: 7 + 12 models are evaluated, each once.
    assert after[0] == InterruptedNasBench201.interrupted  # the interrupted model runs first, not lost
    assert len(after) == 12
    every = before + after
    assert len({sample_key(s) for s in every}) == 19
    assert sorted(map(sample_key, top)) == sorted(map(sample_key, every))  # the best list spans both runs


def test_training_service_engine_refuses_to_resume_and_keeps_the_checkpoint():
    space = grid_space(lambda s: 1.0)
    state = AseNas(seed=0)
    _run(state, space, 3)
    saved = state.state_dict()

    engine = TrainingServiceExecutionEngine.__new__(TrainingServiceExecutionEngine)  # no NNI manager needed here
    ExecutionEngine.__init__(engine)
    strategy = AseNas(seed=0)
    strategy.initialize(space, engine)
    with pytest.raises(RuntimeError, match="cannot resume on NNI's training-service engine.*left untouched"):
        strategy.load_state_dict(saved)
    with pytest.raises(RuntimeError, match="cannot resume"):  # so NasExperiment.save_checkpoint writes nothing
        strategy.state_dict()


def test_initial_architectures_come_first_and_are_checked(use_benchmark_dbs, nb201_space):
    table = load_table()
    known = [{f"cell/{edge}": op for edge, op in table.arch_dict(i, nni_names=True).items()} for i in (6111, 9930)]
    strategy = AseNas(seed=0, initial_architectures=known)
    engine = SequentialExecutionEngine(max_model_count=6)
    strategy(nb201_space, engine)
    assert [m.sample for m in engine.list_models()][:2] == known
    assert [o.kind for o in strategy.searcher.history][:3] == ["initial", "initial", "random"]

    bad = AseNas(initial_architectures=[{**known[0], "cell/0_1": "conv_9x9"}])
    with pytest.raises(UsageError, match=r"initial_architectures\[0\]: .*cell/0_1='conv_9x9'"):
        bad.initialize(nb201_space, SequentialExecutionEngine(max_model_count=1))
    with pytest.raises(UsageError, match=r"initial_architectures\[1\]"):
        AseNas(initial_architectures=[known[0], ["not", "a", "dict"]])


def test_repr_and_list_models_before_run():
    strategy = AseNas(k=4, n_steps=2, seed=7)
    assert repr(strategy) == (
        "AseNas(k=4, n_steps=2, hidden_size=64, learning_rate=0.003, weight_decay=2.37e-05, entropy_weight=0.000505, "
        "baseline_decay=0.9, temperature=5.0, max_redraws=32, surrogate=gp, exploration=0.0, restart_pool=256, n_initial=12, "
        "fallback_radius=3, climb_radius=3, initial_architectures=0, seed=7)"
    )
    with pytest.raises(RuntimeError, match="has not been run"):
        list(strategy.list_models())
    with pytest.raises(RuntimeError, match="not initialised"):
        _ = strategy.searcher


# ------------------------------------------------------------------------------------------- NNI manager (slow)


def _private_network_prefix() -> list[str] | None:
    """``unshare`` arguments for a private network (loopback only) and PID namespace, or None if not allowed."""
    import shutil
    import subprocess

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    prefix = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"]
    probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
    return prefix if probe.returncode == 0 else None


def _run_app(tmp_path: Path, mode: str, timeout: float) -> dict[str, Any]:
    """Run tests/adapters/nas_experiment_app.py in a private network, bounded in time; its JSON summary."""
    import os
    import shutil
    import signal
    import subprocess

    prefix = _private_network_prefix()
    if prefix is None:
        pytest.skip("needs `unshare --net` (the NNI manager listens on every interface)")
    shutil.copy(Path(__file__).with_name("nas_experiment_app.py"), tmp_path)
    out = tmp_path / f"{mode}.json"
    script = (
        "ip link set lo up && exec python3 -c "
        "'import sys, nas_experiment_app as app; sys.exit(app.main(sys.argv[1:]))' "
        f"{mode} {tmp_path / 'experiments'} 8080 {out}"
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "ASENAS_TEST_CRASH_MARKER": str(tmp_path / "crashed")}
    with open(tmp_path / f"{mode}.log", "w") as log:
        process = subprocess.Popen([*prefix, "bash", "-c", script], cwd=tmp_path, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=timeout)
        finally:
            if process.poll() is None:  # everything in the PID namespace dies with it
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == 0, (tmp_path / f"{mode}.log").read_text()[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_nas_experiment_on_the_training_service_with_concurrent_trials(tmp_path):
    summary = _run_app(tmp_path, "run", timeout=420)
    n_trials = summary["max_trial_number"]
    assert sorted(summary["trial_jobs"]) == ["FAILED"] + ["SUCCEEDED"] * (n_trials - 1)
    history = summary["history"]
    assert len(history) == n_trials and [h["score"] for h in history].count(None) == 1  # the crashed trial
    reported = sorted(float(json.loads(m["data"])) for m in summary["final_metrics"])
    assert sorted(h["score"] for h in history if h["score"] is not None) == reported  # metrics reached AseNas
    assert len({json.dumps(h["arch"], sort_keys=True) for h in history}) == n_trials
    best = max((h for h in history if h["score"] is not None), key=lambda h: h["score"])
    assert summary["top"][0]["width"] == best["arch"]["width"]  # export_top_models(formatter="dict")

    checkpoint = tmp_path / "experiments" / "asenas-ts-test" / "checkpoint" / "state.ckpt.torch"
    saved = checkpoint.read_bytes()
    resumed = _run_app(tmp_path, "resume", timeout=300)
    assert "cannot resume on NNI's training-service engine" in resumed["error"]
    assert checkpoint.read_bytes() == saved  # the refused resume did not overwrite the checkpoint


def test_a_version_1_state_of_0_2_continues_its_search():
    """A strategy state of nni-asenas 0.2.0 (tests/data/states-v1.pt, one model in flight) resumes: the model in
    flight is submitted again first and the search goes on with new architectures (ranked by this release's model,
    so not the ones 0.2.0 went on with)."""
    import v1_states

    from nni_asenas.adapters.strategy import upgrade_state

    saved = v1_states.load()["strategy"]
    assert saved["state"]["version"] == 1
    assert upgrade_state(saved["state"])["ledger"]["unanswered"] == [
        [pid, arch] for pid, arch in saved["state"]["running"].items()]
    strategy = AseNas(**v1_states.STRATEGY_SETTINGS)
    engine = SequentialExecutionEngine(max_model_count=len(saved["next"]))
    strategy.initialize(grid_space(v1_states.grid_score), engine)
    strategy.load_state_dict(saved["state"])
    strategy.run()
    samples = [m.sample for m in engine.list_models()]
    assert len(samples) == len(saved["next"]) and samples[0] == saved["in_flight"]
    assert len({json.dumps(sample, sort_keys=True) for sample in samples}) == len(samples)
    assert strategy.state_dict()["version"] == 2
    with pytest.raises(ValueError, match="unsupported AseNas state version 0"):
        upgrade_state({**saved["state"], "version": 0})
