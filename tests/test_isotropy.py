"""Tests of embrepro.isotropy: hand cases for every measure, the suite's statistics, the decomposition."""

import math

import numpy as np
import pytest

from embrepro import isotropy as I


def test_k_of_n_gives_exactly_k_minus_one_over_n_minus_one():
    for n in (3, 10, 50):
        for k in range(1, n + 1):
            assert I.isoscore(I.k_of_n_points(k, n)) == pytest.approx((k - 1) / (n - 1), abs=1e-12)


def test_line_is_zero_and_ball_is_near_one_disk_half():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(2000, 1))
    line = t @ np.array([[1.0, 2.0, -3.0]]) + 4.0           # a line in R^3 (not through the origin)
    assert I.isoscore(line) == pytest.approx(0.0, abs=1e-9)
    ball = rng.normal(size=(100000, 3))
    assert I.isoscore(ball) == pytest.approx(1.0, abs=0.01)
    disk = np.c_[rng.normal(size=(100000, 2)), np.zeros(100000)]
    assert I.isoscore(disk) == pytest.approx(0.5, abs=0.01)


def test_isoscore_is_affine_in_the_participation_ratio():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    n = 12
    assert I.isoscore(x) == pytest.approx((I.participation_ratio(x) - 1) / (n - 1), abs=1e-12)
    # hand case: variances (4, 1) in 2-d -> PR = 25/17, IsoScore = PR - 1 = 8/17
    pts = np.array([[2.0, 0], [-2.0, 0], [0, 1.0], [0, -1.0]])   # cov diag (8/3, 2/3): ratio 4:1
    assert I.participation_ratio(pts) == pytest.approx(25 / 17)
    assert I.isoscore(pts) == pytest.approx(8 / 17)


def test_isoscore_matches_the_official_formula_step_by_step():
    # the five steps of the official code, written out on (n_dims, m_points) input
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 6)) * np.array([3, 1, 1, 0.5, 0.2, 2])
    pts = x.T
    pts = pts - pts.mean(axis=1, keepdims=True)
    _, _, vt = np.linalg.svd(pts.T, full_matrices=False)
    rotated = vt @ pts
    diag = np.diag(np.cov(rotated))
    n = len(diag)
    normed = diag * math.sqrt(n) / np.linalg.norm(diag)
    defect = np.linalg.norm(normed - 1) / math.sqrt(2 * (n - math.sqrt(n)))
    official = ((n - defect ** 2 * (n - math.sqrt(n))) ** 2 - n) / (n * (n - 1))
    assert I.isoscore(x) == pytest.approx(official, abs=1e-10)


def test_average_cosine_hand_cases():
    same = np.tile([[1.0, 1.0]], (10, 1))
    assert I.average_cosine(same) == pytest.approx(1.0)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]])            # the only distinct pair has cosine -1
    assert I.average_cosine(opposite, n_pairs=100) == pytest.approx(-1.0)
    assert I.cosine_isotropy(opposite, n_pairs=100) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        I.average_cosine(np.array([[0.0, 0.0], [1.0, 0.0]]))


def test_partition_score_hand_cases():
    # +-e_i in 2-d: X^T X = 2I, eigenvectors the axes; Z = e + 1/e on both -> ratio 1
    pts = np.array([[1.0, 0], [-1.0, 0], [0, 1.0], [0, -1.0]])
    assert I.partition_score(pts) == pytest.approx(1.0)
    # a cloud shifted along one axis: Z along that axis is much larger
    assert I.partition_score(pts + np.array([3.0, 0])) < 0.2
    # large norms do not overflow
    assert 0 <= I.partition_score(1e4 * pts + 1e4) <= 1


def test_suite_statistics_separate_the_measures():
    iso = I.MEASURES["IsoScore"]
    cos = I.MEASURES["1 - |avg cosine|"]
    assert I.suite_statistic("mean shift", iso, 10, 500, 0) == pytest.approx(0.0, abs=1e-10)
    assert I.suite_statistic("mean shift", cos, 10, 500, 0) < -0.5     # the cosine measure is not mean-agnostic
    assert I.suite_statistic("rotation", iso, 10, 500, 0) == pytest.approx(0.0, abs=1e-10)
    assert I.suite_statistic("isotropic scaling", I.partition_score, 10, 500, 0) < -0.1
    assert I.suite_statistic("dimensions used", iso, 10, 5000, 0) == pytest.approx(1.0, abs=0.05)
    assert abs(I.suite_statistic("dimensions used", cos, 10, 5000, 0)) < 0.1
    assert I.suite_statistic("one dominant direction", iso, 10, 5000, 0) > 0.2
    with pytest.raises(ValueError):
        I.suite_statistic("no such test", iso, 10, 100, 0)


def test_marchenko_pastur_prediction_matches_gaussian_samples():
    rng = np.random.default_rng(3)
    for m in (60, 200, 2000):
        x = rng.normal(size=(m, 40))
        assert I.isoscore(x) == pytest.approx(I.marchenko_pastur_isoscore(40, m), abs=0.03)
    assert I.marchenko_pastur_isoscore(40, 10 ** 9) == pytest.approx(1.0, abs=1e-6)


def test_decomposition_recovers_planted_parts_and_shares_add_up():
    rng = np.random.default_rng(4)
    c, t, d = 30, 8, 5
    pos = rng.normal(size=(t, d)); pos -= pos.mean(axis=0)
    ctx = rng.normal(size=(c, d)); ctx -= ctx.mean(axis=0)
    mu = np.arange(d, dtype=float)
    h = mu + pos[None] + ctx[:, None]                        # no residual
    dec = I.decompose(h)
    np.testing.assert_allclose(dec.pos, pos, atol=1e-12)
    np.testing.assert_allclose(dec.ctx, ctx, atol=1e-12)
    np.testing.assert_allclose(dec.resid, 0, atol=1e-12)
    assert dec.shares["residual"] == pytest.approx(0.0, abs=1e-12)
    assert sum(dec.shares.values()) == pytest.approx(1.0)
    noisy = I.decompose(h + rng.normal(size=h.shape))
    assert sum(noisy.shares.values()) == pytest.approx(1.0)
    assert noisy.shares["residual"] > 0.1


def test_position_statistics_hand_cases():
    angles = np.linspace(0, np.pi / 2, 10)
    arc = np.c_[np.cos(angles), np.sin(angles), np.zeros(10)]
    assert I.adjacent_cosine(arc) == pytest.approx(math.cos(angles[1]))
    assert I.top_share(arc, 2) == pytest.approx(1.0)
    assert I.top_share(np.eye(4), 1) == pytest.approx(1 / 3)   # 4 points spanning a 3-d simplex evenly
    a = np.array([[1.0, 0, 0]]); b = np.array([[0, 1.0, 0], [1.0, 1.0, 0]])
    assert I.cross_abs_cosine(a, b) == pytest.approx((0 + 1 / math.sqrt(2)) / 2)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        I.isoscore(np.zeros(5))
    with pytest.raises(ValueError):
        I.isoscore(np.ones((10, 3)))                          # no variance
    with pytest.raises(ValueError):
        I.k_of_n_points(5, 3)
    with pytest.raises(ValueError):
        I.decompose(np.zeros((1, 3, 2)))


def test_position_replicates_and_bootstrap_replicates():
    rng = np.random.default_rng(5)
    pos = rng.normal(size=(6, 4)); pos -= pos.mean(axis=0)
    same = np.repeat((pos + 1.0)[None], 10, axis=0)          # every context identical: no sampling noise
    reps = I.position_replicates(same, lambda p: float(p[0, 0]), n_boot=7, seed=0, chunk=3)
    np.testing.assert_allclose(reps, pos[0, 0], atol=1e-12)
    noisy = same + rng.normal(size=same.shape)
    reps = I.position_replicates(noisy, lambda p: float(p[0, 0]), n_boot=200, seed=0)
    assert reps.std() > 0.01 and len(reps) == 200
    values = np.arange(10.0)
    boot = I.bootstrap_replicates(lambda idx: values[idx].mean(), 10, 500, seed=1)
    assert abs(boot.mean() - 4.5) < 0.3 and boot.std() > 0.3


def test_recentre_keeps_the_spread_and_moves_the_median():
    reps = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    out = I.recentre(reps, 0.8)
    assert np.median(out) == pytest.approx(0.8)
    np.testing.assert_allclose(np.diff(out), np.diff(reps))
    # IsoScore replicates of an isotropic cloud are biased low; re-centred, the interval covers the estimate
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 30))
    reps = I.bootstrap_replicates(lambda idx: I.isoscore(x[idx]), len(x), 50, seed=0)
    assert np.percentile(reps, 97.5) < I.isoscore(x)                 # the raw bootstrap misses the estimate
    rec = I.recentre(reps, I.isoscore(x))
    assert np.percentile(rec, 2.5) < I.isoscore(x) < np.percentile(rec, 97.5)
