"""Every interval, bootstrap and test the book's verdicts use, in one place.

Conventions (``../shared/docs/verdicts.md``, "Intervals"):

* An :class:`Interval` is a point estimate with a two-sided confidence interval (95% unless
  stated) and the name of the method that made it. Verdict rules in :mod:`embrepro.claims` take
  intervals, never bare numbers.
* Over seeds: a t-interval with n - 1 degrees of freedom (three seeds give t = 4.30, not 2). With
  one seed there is no estimate of seed noise, and the interval is infinite: a single seed can
  never decide a claim on seed noise alone.
* Over items (queries, pairs, questions): a paired percentile bootstrap, the same resampled items
  for both systems. Resamples are drawn from ``numpy.random.default_rng(seed)``: the same inputs
  and seed give the same interval.
* Where both apply, :func:`seeds_and_items` keeps the wider of the two (:func:`wider` for other
  pairs of intervals).
* Speeds and sizes: :func:`median_ratio` bootstraps the median of per-repeat ratios measured side
  by side.

Notebooks never define their own interval functions (a test enforces it); what a chapter needs and
this module lacks is added here, with a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _sp

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate and its confidence interval ``[low, high]`` at ``level``, made by ``method``.

    ``n`` is the number of independent units behind it (seeds, items, repeats).
    """

    estimate: float
    low: float
    high: float
    level: float = LEVEL
    method: str = ""
    n: int = 0

    def __post_init__(self):
        if math.isnan(self.estimate) or math.isnan(self.low) or math.isnan(self.high):
            raise ValueError(f"an interval cannot contain NaN: {self.estimate}, [{self.low}, {self.high}]")
        if not self.low <= self.high:
            raise ValueError(f"interval bounds are reversed: [{self.low}, {self.high}]")

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def shift(self, by: float) -> "Interval":
        """The same interval moved by ``by`` (e.g. a measured value minus the paper's target)."""
        return Interval(self.estimate + by, self.low + by, self.high + by, self.level, self.method, self.n)

    def scale(self, factor: float) -> "Interval":
        lo, hi = sorted((self.low * factor, self.high * factor))
        return Interval(self.estimate * factor, lo, hi, self.level, self.method, self.n)

    def format(self, digits: int = 1, unit: str = "") -> str:
        return (f"{self.estimate:.{digits}f}{unit} [{self.low:.{digits}f}, {self.high:.{digits}f}]")

    def to_json(self) -> dict:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level,
                "method": self.method, "n": self.n}

    def __str__(self) -> str:
        return self.format(2)


def exact(value: float, method: str = "exact (no sampling noise)") -> Interval:
    """A quantity without sampling noise (a count, a size ratio from arithmetic): a zero-width interval."""
    return Interval(float(value), float(value), float(value), 1.0, method, 1)


def _finite(values, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"{what}: need a non-empty 1-d sample, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: the sample contains NaN or infinity: {x}")
    return x


# --------------------------------------------------------------------------------------------
# Over seeds: t-intervals
# --------------------------------------------------------------------------------------------

def t_interval(samples: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of per-seed values with a t-interval on n - 1 degrees of freedom (infinite for n = 1)."""
    x = _finite(samples, "t_interval")
    n, mean = len(x), float(x.mean())
    if n < 2:
        return Interval(mean, -math.inf, math.inf, level, "t over seeds (one seed: no noise estimate)", n)
    half = float(_sp.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, level, f"t over {n} seeds (df {n - 1})", n)


def seed_difference(a: Sequence[float], b: Sequence[float], paired: bool = True,
                    level: float = LEVEL) -> Interval:
    """Mean of ``a - b`` over seeds with a t-interval.

    ``paired=True`` (the default: both arms ran with the same seeds, item for item) takes the
    t-interval of the per-seed differences, df = n - 1. ``paired=False`` uses Welch's interval.
    """
    a, b = _finite(a, "seed_difference a"), _finite(b, "seed_difference b")
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired seeds need equally many values, got {len(a)} and {len(b)}")
        iv = t_interval(a - b, level)
        return Interval(iv.estimate, iv.low, iv.high, level, f"paired {iv.method}", iv.n)
    na, nb = len(a), len(b)
    diff = float(a.mean() - b.mean())
    if na < 2 or nb < 2:
        return Interval(diff, -math.inf, math.inf, level, "Welch t (too few seeds)", min(na, nb))
    va, vb = a.var(ddof=1) / na, b.var(ddof=1) / nb
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, diff, diff, level, "Welch t (no spread)", min(na, nb))
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    half = float(_sp.t.ppf(0.5 + level / 2, df) * se)
    return Interval(diff, diff - half, diff + half, level, f"Welch t (df {df:.1f})", min(na, nb))


def pair_seeds(a_by_seed: Sequence, b_by_seed: Sequence) -> tuple[list, list]:
    """The per-seed results of systems A and B as two equally long lists, paired seed by seed.

    ``b_by_seed`` may hold a single result, a deterministic baseline shared by every seed: it is
    repeated once per seed of A. Otherwise both need the same number of seeds. The results
    themselves (score arrays, result tables) are not looked at.
    """
    a, b = list(a_by_seed), list(b_by_seed)
    if not a or not b:
        raise ValueError("each system needs at least one result")
    if len(b) == 1:
        b = b * len(a)
    if len(b) != len(a):
        raise ValueError(f"{len(a)} seeds for A but {len(b)} for B")
    return a, b


def noise_band(a: Sequence[float], b: Sequence[float], paired: bool = True, level: float = LEVEL) -> float:
    """Half-width of the seed-difference interval: the smallest gap seed noise cannot explain."""
    return seed_difference(a, b, paired, level).half_width


# --------------------------------------------------------------------------------------------
# Over items: paired bootstrap
# --------------------------------------------------------------------------------------------

def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                     level: float = LEVEL) -> Interval:
    """Mean of ``a - b`` over paired items, with a percentile bootstrap interval.

    ``a`` and ``b`` are per-item scores of two systems on the same items (queries, questions):
    items are resampled with replacement and each pair stays together.
    """
    a, b = _finite(a, "paired_bootstrap a"), _finite(b, "paired_bootstrap b")
    if a.shape != b.shape:
        raise ValueError(f"paired items need equally long samples, got {len(a)} and {len(b)}")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    low, high = _percentiles(means, level)
    return Interval(float(diff.mean()), min(low, float(diff.mean())), max(high, float(diff.mean())),
                    level, f"paired bootstrap over {len(diff)} items ({n_boot} resamples)", len(diff))


def bootstrap(statistic: Callable[[np.ndarray], float], n_items: int, n_boot: int = 2000, seed: int = 0,
              level: float = LEVEL, what: str = "statistic") -> Interval:
    """Percentile bootstrap of any ``statistic(indices)`` over ``n_items`` resampled items.

    ``statistic`` receives an index array (the resample) and returns one number; called once with
    ``np.arange(n_items)`` for the point estimate. Use it for paired statistics of several systems
    by indexing all of them with the same indices.
    """
    if n_items < 1:
        raise ValueError("bootstrap needs at least one item")
    rng = np.random.default_rng(seed)
    point = float(statistic(np.arange(n_items)))
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(n_boot)], dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < n_boot // 2:
        raise ValueError(f"bootstrap of {what}: most resamples gave NaN; too few items ({n_items})?")
    low, high = _percentiles(values, level)
    return Interval(point, min(low, point), max(high, point), level,
                    f"bootstrap of {what} over {n_items} items ({n_boot} resamples)", n_items)


def ratio_of_means(a, b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   level: float = LEVEL, percent: bool = True) -> Interval:
    """``mean(a) / mean(b)`` (x100 when ``percent``) over paired items, with a paired bootstrap.

    The retention of a method against a reference (int8 keeps 97.6% of float32's nDCG): ``a`` holds
    the method's per-item scores, shape (items,) or (runs, items) for several seeds of a random
    method (averaged over runs item by item first); ``b`` the reference's per-item scores. The same
    resampled items are used for both, so the interval says how much the ratio depends on which
    items were asked.
    """
    a = np.asarray(a, dtype=np.float64)
    a = a.mean(axis=0) if a.ndim == 2 else a
    a, b = _finite(a, "ratio_of_means a"), _finite(b, "ratio_of_means b")
    if a.shape != b.shape:
        raise ValueError(f"paired items need equally long samples, got {len(a)} and {len(b)}")
    factor = 100.0 if percent else 1.0
    return bootstrap(lambda idx: factor * a[idx].mean() / b[idx].mean(), len(a), n_boot, seed, level,
                     "a ratio of means")


def _resample_ranks(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Average ranks of the items of bootstrap resamples given as copy counts, with ties shared.

    ``counts[b, k]`` is how often item ``k`` is drawn in resample ``b``. All copies of an item, and
    all items with equal values, share the average of the ranks they occupy, which is what
    ranking the resampled list itself (``scipy.stats.rankdata``) would give them.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    group = np.cumsum(np.r_[True, ordered[1:] != ordered[:-1]]) - 1
    per_group = np.add.reduceat(counts[:, order], starts, axis=1).astype(np.float64)
    group_rank = np.cumsum(per_group, axis=1) - per_group + (per_group + 1) / 2
    ranks = np.empty(counts.shape)
    ranks[:, order] = group_rank[:, group]
    return ranks


def bootstrap_spearman(cosines: Sequence[np.ndarray], gold: Sequence[float], n_boot: int = 1000,
                       seed: int = 0, chunk: int = 500) -> np.ndarray:
    """Spearman x 100 of several systems on shared bootstrap resamples of the pairs.

    ``cosines`` holds one array per system, aligned with ``gold``. Returns an array of shape
    ``(n_boot, len(cosines))``; every row scores all systems on the same resampled pairs, so the
    difference of two columns is a paired bootstrap of their difference in Spearman. A resample is
    stored as copy counts per pair, and Spearman is the count-weighted Pearson correlation of the
    tie-averaged ranks, which equals ``spearmanr`` on the resampled list without sorting it.
    """
    gold = np.asarray(gold, dtype=np.float64)
    systems = [np.asarray(c, dtype=np.float64) for c in cosines]
    if any(len(c) != len(gold) for c in systems):
        raise ValueError("every cosine array must be aligned with gold")
    rng = np.random.default_rng(seed)
    n = len(gold)
    out = np.empty((n_boot, len(systems)))

    def centred(ranks: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return ranks - (weights * ranks).sum(axis=1, keepdims=True) / n

    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(rows)])
        g = centred(_resample_ranks(counts, gold), counts)
        g_norm = np.sqrt((counts * g * g).sum(axis=1))
        for k, system in enumerate(systems):
            r = centred(_resample_ranks(counts, system), counts)
            r_norm = np.sqrt((counts * r * r).sum(axis=1))
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample of tied values: NaN
                out[start:start + rows, k] = 100 * (counts * r * g).sum(axis=1) / (r_norm * g_norm)
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation x 100 (the book's unit for similarity benchmarks)."""
    return 100 * float(_sp.spearmanr(np.asarray(x, float), np.asarray(y, float)).statistic)


def spearman_difference(cos_a: Sequence[float], cos_b: Sequence[float], gold: Sequence[float],
                        n_boot: int = 1000, seed: int = 0, level: float = LEVEL) -> Interval:
    """Spearman(a) - Spearman(b) x 100 on the same pairs, with a paired bootstrap interval."""
    cos_a, cos_b = np.asarray(cos_a, float), np.asarray(cos_b, float)
    boots = bootstrap_spearman([cos_a, cos_b], gold, n_boot=n_boot, seed=seed)
    diffs = boots[:, 0] - boots[:, 1]
    diffs = diffs[np.isfinite(diffs)]
    point = spearman(cos_a, gold) - spearman(cos_b, gold)
    low, high = _percentiles(diffs, level)
    return Interval(point, min(low, point), max(high, point), level,
                    f"paired bootstrap of Spearman over {len(gold)} pairs ({n_boot} resamples)", len(gold))


def spearman_interval(cosines: Sequence[float], gold: Sequence[float], n_boot: int = 1000, seed: int = 0,
                      level: float = LEVEL) -> Interval:
    """Spearman x 100 of one system with a bootstrap interval over pairs."""
    boots = bootstrap_spearman([np.asarray(cosines, float)], gold, n_boot=n_boot, seed=seed)[:, 0]
    boots = boots[np.isfinite(boots)]
    point = spearman(cosines, gold)
    low, high = _percentiles(boots, level)
    return Interval(point, min(low, point), max(high, point), level,
                    f"bootstrap of Spearman over {len(gold)} pairs ({n_boot} resamples)", len(gold))


# --------------------------------------------------------------------------------------------
# Correlations, proportions, combinations
# --------------------------------------------------------------------------------------------

def fisher_interval(r: float, n: int, level: float = LEVEL) -> Interval:
    """Pearson's (or Spearman's) r from ``n`` pairs with Fisher's z interval (needs n > 3)."""
    if n <= 3:
        raise ValueError(f"Fisher's interval needs more than 3 pairs, got {n}")
    if not -1 < r < 1:
        return Interval(float(r), float(r), float(r), level, "Fisher z (|r| = 1)", n)
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    q = float(_sp.norm.ppf(0.5 + level / 2))
    return Interval(float(r), math.tanh(z - q * se), math.tanh(z + q * se), level, f"Fisher z over {n} pairs", n)


def binomial_interval(successes: int, trials: int, level: float = LEVEL, percent: bool = True) -> Interval:
    """A proportion with Wilson's score interval (x100 when ``percent``)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    p, q = successes / trials, float(_sp.norm.ppf(0.5 + level / 2))
    centre = (p + q * q / (2 * trials)) / (1 + q * q / trials)
    half = q * math.sqrt(p * (1 - p) / trials + q * q / (4 * trials * trials)) / (1 + q * q / trials)
    f = 100.0 if percent else 1.0
    return Interval(f * p, f * max(0.0, centre - half), f * min(1.0, centre + half), level,
                    f"Wilson interval over {trials} trials", trials)


def wider(*intervals: Interval) -> Interval:
    """The widest of several intervals of the same quantity (seed noise vs item noise)."""
    if not intervals:
        raise ValueError("wider() needs at least one interval")
    best = max(intervals, key=lambda iv: iv.high - iv.low)
    return Interval(best.estimate, best.low, best.high, best.level,
                    f"wider of: {'; '.join(iv.method for iv in intervals)}", best.n)


def seeds_and_items(per_seed: Sequence[float], over_items: Interval, *, one_seed: str = "infinite") -> Interval:
    """The interval of a quantity measured with several seeds on many items: the wider of two.

    * Over seeds: :func:`t_interval` of ``per_seed``, the quantity once per seed (for a paired
      comparison of A and B, the per-seed differences ``A - B``: the interval of
      :func:`seed_difference`), on n - 1 degrees of freedom.
    * Over items: ``over_items``, made by the caller, because how the items are resampled depends
      on the statistic (a paired bootstrap of seed-averaged per-item scores, shared Spearman
      resamples, a bootstrap within each task, a Fisher interval of a correlation).

    Returns the wider of the two (``verdicts.md``, "where both apply, use the wider") with that
    interval's own estimate, method and n, as :func:`wider` does; on a tie, the seed interval.

    With a single seed there is no estimate of seed noise. ``one_seed="infinite"`` (the default and
    this module's convention) then returns the infinite t-interval, so a claim cannot be decided on
    one seed; ``one_seed="items"`` returns ``over_items`` unchanged, for callers that declare seed
    noise unmeasured (a smoke run with one seed, or a one-split evaluation).
    """
    if one_seed not in ("infinite", "items"):
        raise ValueError(f"one_seed must be 'infinite' or 'items', not {one_seed!r}")
    values = np.asarray(per_seed, dtype=np.float64)
    if one_seed == "items" and values.ndim == 1 and len(values) < 2:
        return over_items
    per_seed = _finite(values, "seeds_and_items per_seed")
    return wider(t_interval(per_seed), over_items)


# --------------------------------------------------------------------------------------------
# Speed and size: ratios measured side by side
# --------------------------------------------------------------------------------------------

def median_ratio(slow: Sequence[float], fast: Sequence[float], n_boot: int = 2000, seed: int = 0,
                 level: float = LEVEL) -> Interval:
    """Median of per-repeat ratios ``slow[i] / fast[i]`` with a bootstrap interval over repeats.

    ``slow`` and ``fast`` are timings of the two methods measured interleaved (repeat ``i`` of one
    right after repeat ``i`` of the other), after a warm-up. A speed-up above 1 means ``fast`` is
    faster. At least 5 repeats are required (``verdicts.md``, rule 5).
    """
    slow, fast = _finite(slow, "median_ratio slow"), _finite(fast, "median_ratio fast")
    if slow.shape != fast.shape:
        raise ValueError(f"interleaved repeats come in pairs, got {len(slow)} and {len(fast)}")
    if len(slow) < 5:
        raise ValueError(f"a speed ratio needs at least 5 interleaved repeats, got {len(slow)}")
    if np.any(fast <= 0) or np.any(slow <= 0):
        raise ValueError("timings must be positive")
    ratios = slow / fast
    return bootstrap(lambda idx: float(np.median(ratios[idx])), len(ratios), n_boot, seed, level,
                     "the median ratio")


# --------------------------------------------------------------------------------------------
# Shape and grids
# --------------------------------------------------------------------------------------------

def quadratic_coefficient(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Interval:
    """The second-order coefficient of a least-squares quadratic fit, with its t-interval (df n - 3).

    A convex (faster than linear) curve has a coefficient whose interval lies above zero; a straight
    line with any intercept has one whose interval straddles zero. Repeated x values (seeds) are
    fine and are what makes the interval honest.
    """
    x, y = _finite(x, "quadratic_coefficient x"), _finite(y, "quadratic_coefficient y")
    if x.shape != y.shape:
        raise ValueError("x and y must be aligned")
    n = len(x)
    if n < 4 or len(np.unique(x)) < 3:
        raise ValueError(f"a quadratic fit needs at least 4 points at 3 distinct x, got {n} points")
    design = np.column_stack([np.ones(n), x, x * x])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = n - 3
    sigma2 = float(resid @ resid) / dof
    cov = sigma2 * np.linalg.inv(design.T @ design)
    half = float(_sp.t.ppf(0.5 + level / 2, dof) * math.sqrt(max(cov[2, 2], 0.0)))
    c2 = float(coef[2])
    return Interval(c2, c2 - half, c2 + half, level, f"t-interval of the quadratic term (df {dof})", n)


@dataclass(frozen=True)
class SignTest:
    """Wins, losses and ties over cells, with one-sided binomial p-values (ties dropped)."""

    wins: int
    losses: int
    ties: int
    p_more_wins: float
    p_more_losses: float


def sign_test(effects: Sequence[float], tie: float = 0.0) -> SignTest:
    """One sign test over the cells of a grid: is the effect positive in more cells than chance allows?

    A cell with ``|effect| <= tie`` is a tie and does not count either way.
    """
    e = _finite(effects, "sign_test")
    wins, losses = int((e > tie).sum()), int((e < -tie).sum())
    ties, n = len(e) - wins - losses, wins + losses
    if n == 0:
        return SignTest(wins, losses, ties, 1.0, 1.0)
    return SignTest(wins, losses, ties,
                    float(_sp.binomtest(wins, n, 0.5, alternative="greater").pvalue),
                    float(_sp.binomtest(losses, n, 0.5, alternative="greater").pvalue))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over grid cells)."""
    p = _finite(p_values, "holm")
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


def bootstrap_p_value(boot_differences: Sequence[float]) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference."""
    d = _finite(boot_differences, "bootstrap_p_value")
    share = min((d <= 0).mean(), (d >= 0).mean())
    return float(min(1.0, 2 * share))


def replicate_interval(estimate: float, replicates: Sequence[float], level: float = LEVEL,
                       method: str = "bootstrap") -> Interval:
    """The percentile interval of bootstrap replicates that were already drawn.

    For statistics resampled together elsewhere (the columns of :func:`bootstrap_spearman`, or a
    difference of two of them): ``replicates`` holds one value per resample; NaN replicates (a
    resample too degenerate to score) are dropped, and the interval is widened to contain
    ``estimate`` if it does not.
    """
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2:
        raise ValueError(f"replicate_interval needs at least 2 finite replicates, got {len(r)}")
    low, high = _percentiles(r, level)
    return Interval(float(estimate), min(low, float(estimate)), max(high, float(estimate)), level,
                    f"{method} ({len(r)} resamples)", 0)


# --------------------------------------------------------------------------------------------
# Tables of per-seed results
# --------------------------------------------------------------------------------------------

def per_seed(frame, column: str, **where) -> np.ndarray:
    """The values of ``column`` in the rows of a results table matching ``where``, in seed order.

    ``per_seed(results, "total", config="SG HS")``: one value per seed (sorted by the ``seed``
    column when there is one), ready for :func:`seed_difference`.
    """
    rows = frame
    for name, value in where.items():
        rows = rows[rows[name] == value]
    if len(rows) == 0:
        raise ValueError(f"no rows match {where}")
    if "seed" in rows.columns:
        rows = rows.sort_values("seed")
    return rows[column].to_numpy(dtype=np.float64)
