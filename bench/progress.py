"""How a benchmark run shows where it is: a tqdm bar on a terminal, a line per phase in a log.

A bar redraws itself with carriage returns; written to a file or a CI log that is one line of
thousands of redraws. Without a terminal the run says each phase once, as it starts, with
the time since the run began.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from tqdm import tqdm


class Steps(Protocol):
    """One strategy's way through the phases of a run."""

    def advance(self, phase: str) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def steps(self, strategy: str, phase_count: int) -> Steps: ...


class _BarSteps:
    """A step of the shared bar per phase, the answers so far beside it."""

    def __init__(self, bar: tqdm, strategy: str, phase_count: int) -> None:
        self.bar = bar
        self.strategy = strategy
        self.left = phase_count
        self.current: str | None = None

    def advance(self, phase: str) -> None:
        if self.current is not None and self.left > 1:
            self.bar.update(1)
            self.left -= 1
        self.current = phase
        self.bar.set_description(f"{self.strategy}: {phase}")

    def progress(self, done: int, total: int) -> None:
        self.bar.set_postfix_str(f"{done}/{total} answered")

    def finish(self) -> None:
        self.bar.update(self.left)
        self.left = 0


class _Bar:
    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def steps(self, strategy: str, phase_count: int) -> Steps:
        return _BarSteps(self.bar, strategy, phase_count)


class _LineSteps:
    def __init__(self, out: TextIO, started: float, strategy: str) -> None:
        self.out = out
        self.started = started
        self.strategy = strategy

    def advance(self, phase: str) -> None:
        self._say(phase)

    def progress(self, done: int, total: int) -> None:
        """Answers so far are for a bar to redraw; a log gets the phases alone."""

    def finish(self) -> None:
        self._say("done")

    def _say(self, what: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f} s] {self.strategy}: {what}", file=self.out, flush=True)


class _Lines:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def steps(self, strategy: str, phase_count: int) -> Steps:
        return _LineSteps(self.out, self.started, strategy)


@contextmanager
def run_progress(total_phases: int, out: TextIO | None = None) -> Iterator[Progress]:
    """A bar when `out` (stderr by default) is a terminal, else a line per phase."""
    stream = out or sys.stderr
    if not stream.isatty():
        yield _Lines(stream)
        return
    with tqdm(total=total_phases, unit="phase", dynamic_ncols=True, file=stream) as bar:
        yield _Bar(bar)
