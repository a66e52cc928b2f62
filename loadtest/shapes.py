"""Load shapes, declared as stages. Users are shares of the crowd (`--crowd`), so one shape
serves a 200-patient CI smoke and a 10,000-patient rehearsal alike.

Each shape also says when the numbers open (seconds after the test starts) and over how
many seconds the patients press "book" after that: seeding puts `opens_at` there, and the
users wait for it, so the crowd meets the opening minute the way a real one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

from locust import LoadTestShape

from loadtest.client.lifecycle import LAPSE_SLACK_SECONDS

# pay-or-drop's second wave asks for freed numbers this long after the first wave's holds
# expired: invariant 9 frees a lapsed hold within 5 s, and the last ones freed need askers.
SECOND_WAVE_SECONDS = LAPSE_SLACK_SECONDS + 5.0


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
    # Above 0, the run's schedules are paid: bookings hold their number until paid.
    fee_cents: ClassVar[int] = 0

    def __init__(self, crowd: int = 1000) -> None:
        super().__init__()
        self.crowd = crowd
        # Seconds an unpaid hold lives, as the server said at seeding (paid scenarios).
        self.hold_window: float | None = None

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


def second_wave_delay(arrival_window: float, hold_window: float) -> float:
    """Seconds from the opening to pay-or-drop's second wave: when the holds of the first
    wave's last presses expire."""
    return arrival_window + hold_window


class PayOrDrop(StagedShape):
    """A flash crowd on paid schedules. The first wave holds every number at the opening:
    most pay, some walk away, some pay and cancel. A second wave, a share of the crowd, comes
    when the abandoned holds expire and books the numbers they free. The first wave stays
    (checking its bookings now and then) until the end.

    How long a hold lives is the server's to say (the hospital's payment window, or the
    database's dev/test seconds): seeding asks it and sets `hold_window`; until then the
    shape only gathers the first wave."""

    abstract = False
    opens_after = 3.0
    arrival_window = 1.0
    fee_cents = 2500
    second_wave_share = 0.3
    # The second wave arrives this long before it asks, like the first before the opening.
    second_wave_gathers = 2.0

    @property  # type: ignore[override]
    def stages(self) -> tuple[Stage, ...]:
        gathering = Stage(until=self.opens_after, users=1.0, rate=0.5)
        if self.hold_window is None:
            return (replace(gathering, until=math.inf),)
        asks = self.opens_after + second_wave_delay(self.arrival_window, self.hold_window)
        ends = asks + SECOND_WAVE_SECONDS
        return (
            gathering,
            Stage(until=asks - self.second_wave_gathers, users=1.0, rate=0.5),
            Stage(until=ends, users=1.0 + self.second_wave_share, rate=1.0),
            Stage(until=ends + 1.0, users=0.0, rate=1.0),
        )


SHAPES: dict[str, type[StagedShape]] = {
    "flash": FlashCrowd,
    "hot": HotNumber,
    "churn": CancelRebookChurn,
    "sustained": SustainedMixed,
    "smoke": SmokeFlash,
    "pay-or-drop": PayOrDrop,
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
