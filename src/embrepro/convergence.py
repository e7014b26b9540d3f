"""When has an iterative fit converged? A rule declared before the first epoch runs.

``../shared/docs/verdicts.md`` lists "a loss that has converged by a stated criterion" among the
preconditions a claim may need. A chapter states the rule (its window, tolerance and epoch cap)
with its claims, trains until the rule says stop, and reports whether it stopped because the loss
settled or because the cap was reached; only the first counts as converged.

Convention: ``history`` is the loss of each finished epoch, oldest first, all positive. A per-epoch
loss of a stochastic optimiser wobbles, so the rule compares the *mean* loss of the last ``window``
epochs with the mean of the ``window`` epochs before them::

    drop = (mean(previous window) - mean(last window)) / mean(previous window)

The fit has converged when ``|drop| < tol``: it neither falls nor rises by ``tol`` or more per
window. A loss that still falls faster, or one that climbs, has not converged; a history shorter
than two windows cannot show convergence at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plateau:
    """Stop when the windowed mean loss changes by less than ``tol`` (relative), or at ``max_epochs``."""

    window: int = 5
    tol: float = 0.005
    max_epochs: int = 100

    def __post_init__(self):
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"window must be a positive integer, got {self.window!r}")
        if not self.tol > 0:
            raise ValueError(f"tol must be > 0, got {self.tol!r}")
        if not (isinstance(self.max_epochs, int) and self.max_epochs >= 1):
            raise ValueError(f"max_epochs must be a positive integer, got {self.max_epochs!r}")

    @property
    def can_converge(self) -> bool:
        """False when the cap is reached before two windows exist: such a run is never judged converged."""
        return self.max_epochs >= 2 * self.window

    def relative_drop(self, history: Sequence[float]) -> float:
        """Relative fall of the last window's mean loss against the window before (NaN if too short)."""
        h = np.asarray(history, dtype=np.float64)
        if len(h) < 2 * self.window:
            return math.nan
        if not np.all(np.isfinite(h)) or np.any(h <= 0):
            raise ValueError("a loss history must be finite and positive")
        before = float(h[-2 * self.window:-self.window].mean())
        last = float(h[-self.window:].mean())
        return (before - last) / before

    def converged(self, history: Sequence[float]) -> bool:
        drop = self.relative_drop(history)
        return bool(math.isfinite(drop) and abs(drop) < self.tol)

    def stop(self, history: Sequence[float]) -> bool:
        """Train on while this is False: converged, or the cap reached."""
        return self.converged(history) or len(history) >= self.max_epochs

    def sentence(self) -> str:
        return (f"converged when the mean loss of the last {self.window} epochs differs from the mean of the "
                f"{self.window} before by less than {100 * self.tol:g}% of it, within at most {self.max_epochs} "
                f"epochs; a fit stopped by the cap has not converged")
