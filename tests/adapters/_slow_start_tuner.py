"""The tuner of ``tests/adapters/test_nnictl_crash.py``: :class:`~nni_asenas.AseNasTuner`, slow to take its search
space after ``nnictl resume`` (as on a loaded machine, where importing torch takes 15-25 s), so that trials NNI re-runs
at once report before the resumed tuner is ready."""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from nni_asenas import AseNasTuner

RESUME_DELAY_SECONDS = 12.0


class SlowStartTuner(AseNasTuner):
    def update_search_space(self, search_space: Mapping[str, Any]) -> None:
        if os.environ.get("NNI_MODE") == "resume" and self.searcher is None:
            time.sleep(RESUME_DELAY_SECONDS)
        super().update_search_space(search_space)
