"""Progress of the phases inside an agent's training that are not env steps.

The MAN agent trains in phases (acting and filing screens, the long-term memory's Adam steps;
``memagent imagine`` also Q-learning and the judge); each reports through
:meth:`memagent.agent.Agent.progress`, which ``memagent train`` and ``memagent imagine`` point
at a :class:`PhaseProgress`: a rich progress bar per phase (the default), or, with
``--no-progress``, a line at every tenth of a phase::

    memagent train: training the long-term memory: step 300/3,000, loss 2,410, recon 2,388, kl 21.3
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def _fmt(value) -> str:
    """A metric, short: 3 significant digits below 100, whole numbers above."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


class PhaseProgress:
    """Draws ``(phase, done, total, metrics)`` reports.

    :param bar: a rich bar per phase (each stays on screen when its phase ends); False: a line
        at every tenth of a phase and at its end (with the phase's seconds), through ``say``.
    :param say: prints one line (the command's prefix in front).
    :param lines: how many lines a phase prints without the bar.
    """

    def __init__(self, bar: bool = True, say: Callable[[str], None] = print, lines: int = 10):
        if lines < 1:
            raise ValueError(f"lines must be >= 1, got {lines}")
        self.bar, self.say, self.lines = bar, say, int(lines)
        self.phase, self.progress, self.task, self.last = None, None, None, 0.0
        self.next_line = 0

    def __call__(self, phase: str, done: int, total: int, **metrics) -> bool:
        """Report ``done`` of ``total`` steps of ``phase`` (a new name starts a new phase);
        ``metrics`` (e.g. ``loss``) are shown beside. Returns True (go on)."""
        if phase != self.phase:
            self._end_phase()
            self._start_phase(phase, total)
        text = ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
        if self.bar:
            now = time.perf_counter()
            if now - self.last >= 0.2 or done >= total:
                self.last = now
                self.progress.update(self.task, completed=done, total=max(total, done), metrics=text)
        elif done >= self.next_line or done >= total:
            end = f", {time.perf_counter() - self.t0:.1f} s" if done >= total else ""
            self.say(f"{phase}: step {done:,}/{total:,}" + (f", {text}" if text else "") + end)
            step = max(total // self.lines, 1)
            self.next_line = (done // step + 1) * step
        return True

    def _start_phase(self, phase: str, total: int) -> None:
        self.phase, self.next_line = phase, max(total // self.lines, 1)  # first line at a tenth
        self.t0 = time.perf_counter()
        if not self.bar:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TextColumn("<"),
                                 TimeRemainingColumn(), transient=False)
        self.task = self.progress.add_task(phase, total=total, metrics="")
        self.progress.start()

    def _end_phase(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.phase, self.progress, self.task = None, None, None

    def close(self) -> None:
        """End the current phase (stop its bar)."""
        self._end_phase()
