"""The statistics module: intervals against hand computations and scipy; no notebook copies."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sp

from embrepro import stats
from embrepro.stats import Interval

ROOT = Path(__file__).resolve().parents[1]


def test_t_interval_matches_scipy():
    x = [3.1, 2.7, 3.6, 3.3]
    got = stats.t_interval(x)
    low, high = sp.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sp.sem(x))
    assert (got.low, got.high) == pytest.approx((low, high))
    assert got.n == 4 and "df 3" in got.method


def test_welch_difference_matches_scipy():
    a, b = [10.0, 11.0, 12.5, 10.4], [9.0, 9.7, 8.1]
    got = stats.seed_difference(a, b, paired=False)
    ref = sp.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (got.low, got.high) == pytest.approx((ref.low, ref.high))
    with pytest.raises(ValueError, match="paired"):
        stats.seed_difference(a, b, paired=True)


def test_paired_bootstrap_keeps_pairs_and_is_reproducible():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.2, 300)
    b = a - 0.05 + rng.normal(0, 0.01, 300)    # b tracks a closely: pairing makes the interval narrow
    iv = stats.paired_bootstrap(a, b, n_boot=1000, seed=1)
    assert iv.low > 0.04 and iv.high < 0.06
    assert iv == stats.paired_bootstrap(a, b, n_boot=1000, seed=1)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(a, b[:10])
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_bootstrap([1.0, float("nan")], [1.0, 2.0])


def test_wider_and_interval_validation():
    narrow, wide = Interval(1, 0.5, 1.5, method="t"), Interval(1, -1, 3, method="boot")
    assert stats.wider(narrow, wide).low == -1 and "t" in stats.wider(narrow, wide).method
    with pytest.raises(ValueError):
        Interval(1, 2, 0)


def test_binomial_and_fisher_intervals():
    iv = stats.binomial_interval(7, 100)
    assert iv.estimate == pytest.approx(7.0) and 3.0 < iv.low < 4.0 and 13.0 < iv.high < 14.5
    r = stats.fisher_interval(0.5, 103)   # se of z = 0.1
    assert r.low == pytest.approx(math.tanh(math.atanh(0.5) - 1.95996 * 0.1), rel=1e-4)


def test_spearman_difference_agrees_with_point_values():
    rng = np.random.default_rng(3)
    gold = rng.normal(size=200)
    good, bad = gold + rng.normal(0, 0.5, 200), gold + rng.normal(0, 2.0, 200)
    d = stats.spearman_difference(good, bad, gold, n_boot=300)
    assert d.estimate == pytest.approx(stats.spearman(good, gold) - stats.spearman(bad, gold))
    assert d.low > 0


def test_median_ratio_needs_five_interleaved_repeats_and_is_load_robust():
    slow = [10.0, 10.2, 30.0, 9.9, 10.1]   # one repeat hit by load
    fast = [5.0, 5.1, 5.0, 4.9, 5.0]
    iv = stats.median_ratio(slow, fast, n_boot=500)
    assert iv.estimate == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ValueError, match="at least 5"):
        stats.median_ratio(slow[:3], fast[:3])


def test_quadratic_coefficient_separates_convex_from_a_line_with_intercept():
    # A noisy straight line with a negative intercept (log-log slope > 1) must not look convex more
    # often than the interval's 5% error rate allows; a convex curve must look convex every time.
    x = np.repeat([2, 4, 6, 8, 10, 12, 14, 16], 3).astype(float)
    rng = np.random.default_rng(0)
    false_convex = convex_found = 0
    for _ in range(200):
        line = -5 + 3.0 * x + rng.normal(0, 0.5, len(x))
        curve = 0.05 * x ** 2 + x + rng.normal(0, 0.5, len(x))
        false_convex += stats.quadratic_coefficient(x, line).low > 0
        convex_found += stats.quadratic_coefficient(x, curve).low > 0
    assert false_convex <= 20          # expected about 5 (2.5% one-sided) of 200
    assert convex_found == 200
    flat = stats.quadratic_coefficient(x, -5 + 3.0 * x + rng.normal(0, 0.5, len(x)))
    assert abs(flat.estimate) < 0.05


def test_sign_test_and_holm():
    s = stats.sign_test([1] * 11 + [-1] * 3 + [0] * 13)
    assert (s.wins, s.losses, s.ties) == (11, 3, 13)
    assert s.p_more_wins == pytest.approx(sp.binomtest(11, 14, 0.5, alternative="greater").pvalue)
    adjusted = stats.holm([0.01, 0.04, 0.03])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_per_seed_selects_and_orders():
    import pandas as pd

    frame = pd.DataFrame({"config": ["a", "b", "a", "a"], "seed": [2, 0, 0, 1], "acc": [3.0, 9.0, 1.0, 2.0]})
    assert stats.per_seed(frame, "acc", config="a").tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="no rows"):
        stats.per_seed(frame, "acc", config="z")


INTERVAL_NAMES = re.compile(
    r"^\s*def\s+(\w*(?:interval|bootstrap|band|per_seed|spearman|fisher|binomial|noise|ci|confidence|"
    r"t_test|sign_test|holm|gap)\w*)\s*\(", re.MULTILINE | re.IGNORECASE)


def test_no_notebook_defines_its_own_interval_function():
    offenders = []
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or "_scratch" in path.parts:
            continue
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        offenders += [f"{path.name}: def {name}" for name in INTERVAL_NAMES.findall(code)]
    assert not offenders, ("interval and bootstrap functions belong in embrepro.stats, not in notebooks: "
                           + ", ".join(offenders))


def test_the_interval_guard_catches_a_notebook_copy(tmp_path):
    code = "import numpy as np\n\ndef bootstrap_gap(a, b):\n    return 0\n\ndef fisher_interval(r, n):\n    pass\n"
    assert INTERVAL_NAMES.findall(code) == ["bootstrap_gap", "fisher_interval"]


def test_ratio_of_means_for_retention():
    rng = np.random.default_rng(1)
    ref = rng.random(200) + 0.1
    same = stats.ratio_of_means(ref, ref)
    assert (same.estimate, same.low, same.high) == pytest.approx((100, 100, 100))
    worse = stats.ratio_of_means(np.vstack([0.8 * ref, ref]), ref)  # two runs: 80% and 100%
    assert (worse.estimate, worse.low, worse.high) == pytest.approx((90, 90, 90))
    noisy = stats.ratio_of_means(ref * rng.uniform(0.5, 1.3, 200), ref)
    assert noisy.low < noisy.estimate < noisy.high and noisy.high - noisy.low > 2
    with pytest.raises(ValueError):
        stats.ratio_of_means(ref[:10], ref)


def test_replicate_interval_takes_percentiles_and_contains_the_estimate():
    reps = np.arange(1001, dtype=float)  # 0 .. 1000
    iv = stats.replicate_interval(500.0, reps, method="bootstrap of a gain")
    assert (iv.low, iv.high) == pytest.approx((25.0, 975.0)) and iv.estimate == 500.0
    assert "bootstrap of a gain (1001 resamples)" == iv.method
    with_nan = stats.replicate_interval(500.0, np.r_[reps, np.nan])
    assert (with_nan.low, with_nan.high) == pytest.approx((25.0, 975.0))
    outside = stats.replicate_interval(2000.0, reps)          # estimate beyond the replicates
    assert outside.high == 2000.0 and outside.low == pytest.approx(25.0)
    with pytest.raises(ValueError):
        stats.replicate_interval(0.0, [np.nan, 1.0])


def test_seeds_and_items_keeps_the_wider_interval():
    # Three seeds 1, 2, 3: mean 2, sd 1, t(0.975, df 2) = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138.
    per_seed = [1.0, 2.0, 3.0]
    narrow_items = Interval(2.0, 1.5, 2.5, method="bootstrap over items", n=50)
    got = stats.seeds_and_items(per_seed, narrow_items)          # the seed interval is the wider
    assert got.estimate == pytest.approx(2.0)
    assert (got.low, got.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert got.n == 3 and "t over 3 seeds" in got.method and "bootstrap over items" in got.method
    wide_items = Interval(2.1, -3.0, 7.0, method="bootstrap over items", n=50)
    got = stats.seeds_and_items(per_seed, wide_items)            # the item bootstrap is the wider
    assert (got.estimate, got.low, got.high, got.n) == (2.1, -3.0, 7.0, 50)
    # Paired per-seed differences give seed_difference's interval.
    a, b = [3.0, 4.5, 5.0], [2.0, 2.5, 2.0]
    paired = stats.seed_difference(a, b)
    got = stats.seeds_and_items(np.subtract(a, b), Interval(2.0, 1.9, 2.1))
    assert (got.low, got.high) == (paired.low, paired.high)


def test_seeds_and_items_with_one_seed():
    items = Interval(0.4, 0.1, 0.7, method="bootstrap over items", n=80)
    got = stats.seeds_and_items([0.4], items)                    # no seed noise estimate: cannot decide
    assert math.isinf(got.low) and math.isinf(got.high)
    assert stats.seeds_and_items([0.4], items, one_seed="items") is items
    assert stats.seeds_and_items([], items, one_seed="items") is items
    with pytest.raises(ValueError, match="one_seed"):
        stats.seeds_and_items([0.4, 0.5], items, one_seed="drop")
    with pytest.raises(ValueError, match="NaN"):
        stats.seeds_and_items([0.4, float("nan")], items)


def test_pair_seeds_repeats_a_shared_baseline_and_refuses_unequal_seeds():
    a, b = stats.pair_seeds(["a0", "a1", "a2"], ["base"])
    assert a == ["a0", "a1", "a2"] and b == ["base", "base", "base"]
    assert stats.pair_seeds(("a0", "a1"), ("b0", "b1")) == (["a0", "a1"], ["b0", "b1"])
    with pytest.raises(ValueError, match="3 seeds for A but 2 for B"):
        stats.pair_seeds(["a0", "a1", "a2"], ["b0", "b1"])
    with pytest.raises(ValueError, match="at least one"):
        stats.pair_seeds([], ["b0"])
    with pytest.raises(ValueError, match="at least one"):
        stats.pair_seeds(["a0"], [])
