"""PhaseProgress: the progress of training phases that are not env steps (MAN's memory)."""

import re

import pytest

from memagent.progress import PhaseProgress


def test_lines_at_every_tenth_with_metrics_and_a_new_phase_restarts():
    said = []
    progress = PhaseProgress(bar=False, say=said.append)
    for step in range(1, 101):
        assert progress("training the long-term memory", step, 100, loss=1234.5, kl=0.25) is True
    assert len(said) == 10
    assert said[0] == "training the long-term memory: step 10/100, loss 1,234, kl 0.25"
    assert said[-1].startswith("training the long-term memory: step 100/100")
    progress("acting", 3, 3)
    assert re.fullmatch(r"acting: step 3/3, [\d.]+ s", said[-1])
    with pytest.raises(ValueError, match="lines must be >= 1"):
        PhaseProgress(lines=0)


def test_bars_start_and_stop_per_phase():
    progress = PhaseProgress(bar=True)
    progress("a", 1, 2, loss=float("nan"))
    first = progress.progress
    progress("b", 2, 2)
    assert progress.progress is not first and not first.live.is_started
    progress.close()
    assert progress.progress is None
