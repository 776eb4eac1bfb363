"""Fixes for NNI 3.0's message dispatcher when an experiment is resumed after a crash (manager and dispatcher
killed), applied by the tuner when it reads its checkpoint, before the dispatcher handles any command. In memory
only (NNI's files are not changed), and nothing here imports torch (the tuner's start-up budget, see
:mod:`nni_asenas.adapters.tuner`).

After ``nnictl resume``, NNI's manager re-runs at once the trials that were running, and tells the dispatcher which
they are (``AddCustomizedTrialJob``) only once the tuner has taken its search space, which takes seconds (importing
torch). Meanwhile:

* a re-run trial's final metric is dropped (``Find unknown job parameter id``): :func:`expect_results_of` registers
  the parameters of the trials the tuner awaits, so that the metric goes to the tuner;
* the dispatcher numbers parameters from 0 again, and from one past the largest re-run id once it hears of them, so
  new trials get the ids of earlier ones; a metric of a new trial whose id is not above the largest re-run id is
  then taken for a re-run trial's and the dispatcher dies of a ``KeyError``. :func:`continue_parameter_ids` numbers
  new parameters from one past the last id the tuner was ever asked for, and keeps the numbering from going back;
* the tuner cannot tell proposals NNI re-runs from proposals NNI never turned into trials (the crash came between
  proposing and starting them): the patched handler passes the re-run ids to the tuner's ``resumed_trials`` method.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

__all__ = ["continue_parameter_ids", "expect_results_of"]

_PATCHED = "_nni_asenas_resume_fix"


def expect_results_of(parameters: Mapping[int, Mapping[str, Any]]) -> None:
    """Tell NNI's dispatcher the parameters of trials whose results may arrive before the manager lists them
    (``{parameter id: parameters}``). Ids it knows already keep their parameters."""
    from nni.runtime import msg_dispatcher  # the dispatcher's own table of parameter id -> parameters

    for parameter_id, params in parameters.items():
        msg_dispatcher._trial_params.setdefault(int(parameter_id), dict(params))


def continue_parameter_ids(last_id: int | None) -> None:
    """Number new parameters from ``last_id + 1`` on (None: as NNI does), never going back, and pass the ids of
    the trials NNI re-runs to ``tuner.resumed_trials(ids)`` when the manager lists them."""
    from nni.runtime import msg_dispatcher

    if last_id is not None:
        msg_dispatcher._next_parameter_id = max(msg_dispatcher._next_parameter_id, int(last_id) + 1)
    dispatcher_class = msg_dispatcher.MsgDispatcher
    if getattr(dispatcher_class.handle_add_customized_trial, _PATCHED, False):
        return
    original: Callable[[Any, Any], None] = dispatcher_class.handle_add_customized_trial

    def handle_add_customized_trial(self: Any, data: Any) -> None:
        floor = msg_dispatcher._next_parameter_id
        original(self, data)
        msg_dispatcher._next_parameter_id = max(msg_dispatcher._next_parameter_id, floor)
        listener = getattr(self.tuner, "resumed_trials", None)
        if callable(listener):
            listener(sorted(self.recovered_trial_params))

    setattr(handle_add_customized_trial, _PATCHED, True)
    dispatcher_class.handle_add_customized_trial = handle_add_customized_trial
