"""Load shapes, declared as stages. Users are shares of the crowd (`--crowd`), so one shape
serves a 200-patient CI smoke and a 10,000-patient rehearsal alike.

Each shape also says when the numbers open (seconds after the test starts) and over how
many seconds the patients press "book" after that: seeding puts `opens_at` there, and the
users wait for it, so the crowd meets the opening minute the way a real one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from locust import LoadTestShape


@dataclass(frozen=True, slots=True)
class Stage:
    until: float  # seconds since the test started
    users: float  # share of the crowd present during the stage
    rate: float  # share of the crowd started (or stopped) per second to get there


class StagedShape(LoadTestShape):
    abstract = True
    stages: ClassVar[tuple[Stage, ...]]
    opens_after: ClassVar[float]
    arrival_window: ClassVar[float]

    def __init__(self, crowd: int = 1000) -> None:
        super().__init__()
        self.crowd = crowd

    @property
    def duration(self) -> float:
        return self.stages[-1].until

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        for stage in self.stages:
            if elapsed < stage.until:
                return round(stage.users * self.crowd), max(stage.rate * self.crowd, 1.0)
        return None


class FlashCrowd(StagedShape):
    """Everyone gathers before the opening, everyone presses within a second of it, then the
    crowd drifts away."""

    abstract = False
    opens_after = 5.0
    arrival_window = 1.0
    stages: ClassVar[tuple[Stage, ...]] = (
        Stage(until=5.0, users=1.0, rate=0.25),  # gathering: all present by the opening
        Stage(until=15.0, users=1.0, rate=1.0),  # the opening and its aftermath
        Stage(until=20.0, users=0.3, rate=0.2),  # decay
        Stage(until=24.0, users=0.0, rate=0.2),
    )


class HotNumber(FlashCrowd):
    """The flash crowd, with 90% of it after one popular doctor (the users pick the target)."""


class CancelRebookChurn(StagedShape):
    """Half the crowd, for half a minute, booking, cancelling and booking again."""

    abstract = False
    opens_after = 3.0
    arrival_window = 5.0
    stages = (
        Stage(until=3.0, users=0.5, rate=0.2),
        Stage(until=33.0, users=0.5, rate=0.2),
        Stage(until=36.0, users=0.0, rate=0.2),
    )


class SustainedMixed(StagedShape):
    """A steady day: browsing, booking, reading and cancelling, already open."""

    abstract = False
    opens_after = 0.0
    arrival_window = 10.0
    stages = (
        Stage(until=10.0, users=1.0, rate=0.1),
        Stage(until=70.0, users=1.0, rate=0.1),
        Stage(until=80.0, users=0.0, rate=0.1),
    )


class SmokeFlash(FlashCrowd):
    """The flash crowd squeezed into four seconds, for CI."""

    opens_after = 1.0
    stages = (
        Stage(until=1.0, users=1.0, rate=1.0),
        Stage(until=3.0, users=1.0, rate=1.0),
        Stage(until=4.0, users=0.0, rate=1.0),
    )


SHAPES: dict[str, type[StagedShape]] = {
    "flash": FlashCrowd,
    "hot": HotNumber,
    "churn": CancelRebookChurn,
    "sustained": SustainedMixed,
    "smoke": SmokeFlash,
}


class ScenarioShape(LoadTestShape):
    """The one shape the locustfile exposes: it follows the scenario of `--scenario`, so
    Locust never has to choose among several shape classes."""

    use_common_options = False

    def __init__(self) -> None:
        super().__init__()
        self._chosen: StagedShape | None = None

    @property
    def chosen(self) -> StagedShape:
        if self._chosen is None:
            options = self.runner.environment.parsed_options if self.runner else None
            scenario = getattr(options, "scenario", "flash")
            crowd = int(getattr(options, "crowd", 1000))
            self._chosen = SHAPES[scenario](crowd)
        return self._chosen

    def reset_time(self) -> None:
        super().reset_time()
        self.chosen.reset_time()

    def tick(self) -> tuple[int, float] | None:
        return self.chosen.tick()
