"""The NAS-Bench-201 table-query trial, run in-process with NNI's trial API replaced by a recorder."""

from __future__ import annotations

from typing import Any

import pytest

from nni_asenas.nasbench.nb201 import load_table
from nni_asenas.trials import nasbench201 as trial

KEYS = {"default", "test_accuracy", "params_M", "flops_M", "simulated_seconds", "nb201_index"}


@pytest.fixture
def nni_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import nni

    calls: dict[str, Any] = {"params": None, "intermediate": [], "final": [], "slept": []}
    monkeypatch.setattr(nni, "get_next_parameter", lambda: calls["params"])
    monkeypatch.setattr(nni, "report_intermediate_result", calls["intermediate"].append)
    monkeypatch.setattr(nni, "report_final_result", calls["final"].append)
    monkeypatch.setattr(trial.time, "sleep", calls["slept"].append)
    return calls


def test_evaluate_reports_the_table_figures() -> None:
    table = load_table()
    arch = table.arch_dict(6111)
    intermediate, final = trial.evaluate(arch, "cifar10")
    assert final["test_accuracy"] == pytest.approx(94.3733, abs=1e-4)  # the README's spot check
    assert final == {
        "default": table.signal(6111, "cifar10"),
        "test_accuracy": table.test_accuracy(6111, "cifar10"),
        "params_M": table.row(6111, "cifar10")["params_M"],
        "flops_M": table.row(6111, "cifar10")["flops_M"],
        "simulated_seconds": table.cost_seconds(6111, "cifar10"),
        "nb201_index": 6111,
    }
    assert [r["epoch"] for r in intermediate] == [12, 200]
    assert intermediate[0]["default"] == final["default"]
    assert intermediate[1]["default"] == table.row(6111, "cifar10")["val200"]


def test_main_reports_intermediate_and_final_results(nni_calls: dict[str, Any]) -> None:
    nni_calls["params"] = load_table().arch_dict(857)
    assert trial.main(["--dataset", "ImageNet16-120", "--sleep-scale", "0.01"]) == 0
    assert len(nni_calls["intermediate"]) == 2 and len(nni_calls["final"]) == 1
    final = nni_calls["final"][0]
    assert set(final) == KEYS and final["test_accuracy"] == pytest.approx(47.3111, abs=1e-4)
    assert nni_calls["slept"] == [pytest.approx(0.01 * final["simulated_seconds"])]


def test_bad_architecture_fails_the_trial_with_one_line(nni_calls: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    nni_calls["params"] = {**load_table().arch_dict(0), "1_2": "conv_7x7"}
    assert trial.main(["--dataset", "cifar100"]) == 2
    err = capsys.readouterr().err
    assert "conv_7x7" in err and "1_2" in err and len(err.strip().splitlines()) == 1
    assert nni_calls["final"] == []


def test_no_parameters_outside_nni(nni_calls: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    nni_calls["params"] = {}
    assert trial.main(["--dataset", "cifar10"]) == 2
    assert "run this trial under nnictl" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--dataset", "mnist"], ["--dataset", "cifar10", "--sleep-scale", "-1"], []])
def test_bad_arguments_exit_2(argv: list[str], nni_calls: dict[str, Any]) -> None:
    with pytest.raises(SystemExit) as exc:
        trial.main(argv)
    assert exc.value.code == 2


class RecordingChannel:
    """NNI's trial command channel as a trial under nnictl sees it: one parameter record in, metrics out."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record: dict[str, Any] | None = record
        self.metrics: list[dict[str, Any]] = []

    def receive_parameter(self) -> dict[str, Any] | None:
        record, self.record = self.record, None
        return record

    def send_metric(self, **metric: Any) -> None:
        self.metrics.append(metric)


def test_the_final_metric_names_the_parameters_the_trial_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through NNI's real trial API: the metric's own parameter_id is the id NNI attaches to it."""
    import nni.trial
    from nni.runtime import trial_command_channel

    channel = RecordingChannel({"parameter_id": 37, "parameter_source": "algorithm", "parameter_index": 0,
                                "parameters": load_table().arch_dict(4321)})
    monkeypatch.setattr(nni.trial, "_params", None)
    monkeypatch.setattr(trial_command_channel, "_channel", channel)
    assert trial.main(["--dataset", "cifar10"]) == 0
    (final,) = [m for m in channel.metrics if m["type"] == "FINAL"]
    assert final["parameter_id"] == 37 and final["value"]["parameter_id"] == 37
    assert final["value"]["nb201_index"] == 4321 and set(final["value"]) == KEYS | {"parameter_id"}
    assert all(m["parameter_id"] == 37 for m in channel.metrics) and len(channel.metrics) == 3
