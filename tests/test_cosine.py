"""embrepro.cosine: closed forms, losses, gauge freedom and similarity agreement, on hand cases."""

import numpy as np
import pytest

from embrepro import cosine as C


@pytest.fixture(scope="module")
def small():
    sim = C.simulate(120, 40, n_clusters=4, rank=4, seed=3)
    return sim, C.gram(sim.X), C.spectrum(sim.X, 4)


def test_spectrum_matches_numpy_svd():
    X = np.array([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    spec = C.spectrum(X, 2)
    assert np.allclose(spec.sigma, [3.0, 2.0])
    assert np.allclose(np.abs(spec.V), np.eye(2))


def test_loss_from_gram_equals_direct_formula():
    rng = np.random.default_rng(0)
    X, A, B = rng.random((7, 5)), rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    G, lam = X.T @ X, 0.7
    fit = np.sum((X - X @ A @ B.T) ** 2)
    assert C.loss_from_gram(G, A, B, lam, "product") == pytest.approx(fit + lam * np.sum((A @ B.T) ** 2))
    assert C.loss_from_gram(G, A, B, lam, "factors") == pytest.approx(fit + lam * (np.sum((X @ A) ** 2) + np.sum(B ** 2)))
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    direct = np.sum((X - X @ A @ Bn.T) ** 2) + lam * np.sum((A @ Bn.T) ** 2)
    assert C.loss_from_gram(G, A, B, lam, "normalised") == pytest.approx(direct)
    with pytest.raises(ValueError):
        C.loss_from_gram(G, A, B, lam, "other")


def test_objective1_gauge_keeps_loss_but_changes_cosines(small):
    _, G, spec = small
    lam = spec.sigma[-1] ** 2
    losses, cos = [], []
    for d in (None, spec.sigma, np.array([0.1, 5.0, 1.0, 20.0])):
        A, B = C.objective1_solution(spec, lam, d)
        losses.append(C.loss_from_gram(G, A, B, lam))
        cos.append(C.cosine_matrix(B))
    assert max(losses) - min(losses) < 1e-8 * losses[0]
    assert np.abs(cos[0] - cos[2]).max() > 0.1          # a different D gives different cosines


def test_objective1_closed_form_is_a_minimum(small):
    _, G, spec = small
    lam = spec.sigma[-1] ** 2
    A, B = C.objective1_solution(spec, lam)
    best = C.loss_from_gram(G, A, B, lam)
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert C.loss_from_gram(G, A + 1e-3 * rng.standard_normal(A.shape), B, lam) > best
    # the wrong shrinkage (g = 1) is worse
    assert C.loss_from_gram(G, spec.V, spec.V, lam) > best


def test_objective2_unique_up_to_rotation_and_a_minimum(small):
    _, G, spec = small
    lam = spec.sigma[-1] / 2
    A, B = C.objective2_solution(spec, lam)
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((4, 4)))
    A2, B2 = C.objective2_solution(spec, lam, Q)
    best = C.loss_from_gram(G, A, B, lam, "factors")
    assert C.loss_from_gram(G, A2, B2, lam, "factors") == pytest.approx(best)
    assert np.abs(C.cosine_matrix(B) - C.cosine_matrix(B2)).max() < 1e-10
    # rescaling the dimensions (Objective 1's gauge) raises Objective 2's loss
    d = np.array([0.5, 2.0, 1.0, 1.5])
    assert C.loss_from_gram(G, A * d, B / d, lam, "factors") > best + 1e-6
    # a singular value below lambda is cut to zero
    s = C.Spectrum(np.array([3.0, 1.0]), np.eye(2))
    _, Bs = C.objective2_solution(s, 2.0)
    assert np.allclose(Bs, [[1.0, 0.0], [0.0, 0.0]])


def test_training_reaches_objective2_closed_form(small):
    sim, G, spec = small
    lam = spec.sigma[-1] / 2
    A, B = C.objective2_solution(spec, lam)
    best = C.loss_from_gram(G, A, B, lam, "factors")
    run = C.train(G, 4, lam, "factors", seed=0, max_iter=800)
    assert C.excess(C.loss_from_gram(G, run.A, run.B, lam, "factors"), best, G) < 1e-6
    seen = sim.X.sum(axis=0) > 0            # an item nobody chose has a zero embedding in the closed form
    diff = np.abs(C.cosine_matrix(run.B) - C.cosine_matrix(B))[np.ix_(seen, seen)]
    assert diff.max() < 1e-4
    normed = C.train(G, 4, spec.sigma[-1] ** 2, "normalised", seed=0, max_iter=20)
    assert np.allclose(np.linalg.norm(normed.B, axis=1), 1.0)


def test_cosine_matrix_upper_and_agreement():
    E = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [0.0, 0.0]])
    S = C.cosine_matrix(E)
    assert S[0, 1] == pytest.approx(0.0) and S[0, 2] == pytest.approx(1 / np.sqrt(2)) and S[3, 0] == 0.0
    assert list(C.upper(np.arange(9).reshape(3, 3))) == [1, 2, 5]
    assert C.agreement(S, S) == pytest.approx(1.0)
    assert C.agreement(S, -S) == pytest.approx(-1.0)


def test_neighbours_overlap_and_knn():
    S = np.array([[1.0, 0.9, 0.1, 0.5],
                  [0.9, 1.0, 0.2, 0.3],
                  [0.1, 0.2, 1.0, 0.8],
                  [0.5, 0.3, 0.8, 1.0]])
    assert C.neighbours(S, 1)[:, 0].tolist() == [1, 0, 3, 2]
    T = S.copy()
    T[0, 3] = T[3, 0] = 0.95                                  # item 0's nearest becomes 3
    assert C.overlap_at_k(S, T, 1).tolist() == [0.0, 1.0, 1.0, 0.0]
    E = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.8, 0.2]])
    labels = np.array([0, 0, 1, 1, 1])
    # item 4 sits among class 0: its 1-NN is item 0 or 1, so it is wrong
    assert C.knn_correct(E, labels, np.arange(5), k=1).tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]


def test_simulator_is_seeded_and_clustered():
    a, b = C.simulate(200, 50, seed=5), C.simulate(200, 50, seed=5)
    assert np.array_equal(a.X, b.X)
    assert set(np.unique(a.X)) <= {0.0, 1.0}
    assert 0.02 < a.X.mean() < 0.08
    truth = C.cosine_matrix(a.item_factors)
    same = a.clusters[:, None] == a.clusters[None, :]
    assert truth[same].mean() > truth[~same].mean() + 0.3
