"""How sure a rate is: the Wilson score interval, which stays inside 0..1 and honest for
small groups, where the normal approximation does not."""

from __future__ import annotations

import math
from typing import Final

Z_95: Final = 1.959964


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The 95% interval of a proportion; (nan, nan) without trials."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = p + z * z / (2 * trials)
    spread = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (centre - spread) / scale, (centre + spread) / scale
