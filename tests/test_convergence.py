import math

import numpy as np
import pytest

from embrepro.convergence import Plateau


def test_relative_drop_by_hand():
    rule = Plateau(window=2, tol=0.01, max_epochs=50)
    # previous window mean (10 + 8) / 2 = 9, last window mean (6 + 3) / 2 = 4.5: drop = 0.5
    assert rule.relative_drop([100.0, 10.0, 8.0, 6.0, 3.0]) == pytest.approx(0.5)
    assert math.isnan(rule.relative_drop([3.0, 2.0, 1.0]))


def test_a_flat_loss_has_converged():
    rule = Plateau(window=3, tol=0.005, max_epochs=100)
    assert rule.converged([1.0] * 6)
    assert rule.stop([1.0] * 6)


def test_a_loss_still_falling_has_not_converged():
    rule = Plateau(window=5, tol=0.005, max_epochs=100)
    history = list(0.99 ** np.arange(30))  # 1% per epoch: about 5% per window
    assert not rule.converged(history)
    assert not rule.stop(history)


def test_a_rising_loss_has_not_converged():
    rule = Plateau(window=2, tol=0.01, max_epochs=100)
    assert not rule.converged([1.0, 1.0, 1.1, 1.2])


def test_wobbles_average_out_but_a_trend_does_not():
    rule = Plateau(window=4, tol=0.005, max_epochs=100)
    wobble = [1.0 + (0.02 if i % 2 else -0.02) for i in range(8)]  # +-2% per epoch, no trend
    assert rule.converged(wobble)
    trend = [1.0 + (0.02 if i % 2 else -0.02) - 0.01 * i for i in range(8)]
    assert not rule.converged(trend)


def test_too_short_a_history_cannot_converge_and_the_cap_stops_without_convergence():
    rule = Plateau(window=5, tol=0.5, max_epochs=3)
    assert not rule.can_converge
    assert not rule.converged([1.0, 1.0, 1.0])
    assert rule.stop([1.0, 1.0, 1.0])          # stopped by the cap ...
    assert not rule.converged([1.0, 1.0, 1.0])  # ... which is not convergence


def test_bad_rules_and_histories_are_refused():
    with pytest.raises(ValueError):
        Plateau(window=0)
    with pytest.raises(ValueError):
        Plateau(tol=0.0)
    with pytest.raises(ValueError):
        Plateau(window=1).relative_drop([1.0, -1.0])
    assert "5 epochs" in Plateau().sentence()
