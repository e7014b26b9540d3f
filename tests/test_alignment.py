"""Tests of embrepro.alignment: Procrustes, QAP matching, the unsupervised pipeline, the metrics."""

import numpy as np
import pytest

from embrepro import alignment


def test_procrustes_recovers_a_known_rotation_exactly():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 8))
    R = alignment.random_orthogonal(8, seed=3)
    W = alignment.procrustes(X, X @ R)
    np.testing.assert_allclose(W, R, atol=1e-10)
    np.testing.assert_allclose(W @ W.T, np.eye(8), atol=1e-10)


def test_procrustes_hand_case_reflection_in_2d():
    # X = I, Y = swap of the axes: the best orthogonal map is the swap itself
    X = np.eye(2)
    Y = np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(alignment.procrustes(X, Y), Y, atol=1e-12)
    with pytest.raises(ValueError):
        alignment.procrustes(np.eye(2), np.eye(3))


def test_random_orthogonal_is_orthogonal_and_seeded():
    Q = alignment.random_orthogonal(5, seed=1)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-12)
    np.testing.assert_array_equal(Q, alignment.random_orthogonal(5, seed=1))
    assert not np.allclose(Q, alignment.random_orthogonal(5, seed=2))


def test_qap_recovers_a_permuted_rotated_centroid_set():
    rng = np.random.default_rng(1)
    CA = rng.standard_normal((12, 6)) * np.linspace(3, 1, 6)
    R = alignment.random_orthogonal(6, seed=4)
    perm = rng.permutation(12)
    CB = (CA @ R)[perm]               # CB[perm.argsort()] == CA @ R
    p = alignment.match_by_qap(CA, CB, restarts=20, seed=0)
    np.testing.assert_array_equal(p, perm.argsort())
    np.testing.assert_allclose(CB[p], CA @ R, atol=1e-12)


def test_qap_cannot_match_unrelated_sets():
    # control: two unrelated random sets have no true matching; the recovered "matching" is near chance
    rng = np.random.default_rng(2)
    hits = 0
    for s in range(5):
        CA, CB = rng.standard_normal((10, 5)), rng.standard_normal((10, 5))
        hits += (alignment.match_by_qap(CA, CB, restarts=5, seed=s) == np.arange(10)).sum()
    assert hits <= 10  # expected 1 per trial by chance; identity would give 50


def test_preprocess_centres_reduces_and_normalises():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4)) * [5, 2, 1, 0.1] + 7
    p = alignment.Preprocess.fit(X, k=2)
    Z = p.transform(X)
    assert Z.shape == (100, 2) and p.dim == 2
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0)
    # the top principal direction is the first axis (variance 25)
    assert abs(p.components[0, 0]) > 0.99
    full = alignment.Preprocess.fit(X)
    np.testing.assert_allclose(full.transform(X[:1]), alignment.normalise(X[:1] - X.mean(0)))


def _clustered(n, d, clusters, seed, spread=0.15):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d)) * np.linspace(2.0, 0.7, d)
    sizes = rng.dirichlet(np.ones(clusters) * 2)
    labels = rng.choice(clusters, size=n, p=sizes)
    return centres[labels] + spread * rng.standard_normal((n, d)), labels


def test_unsupervised_pipeline_recovers_a_planted_rotation_from_disjoint_halves():
    d = 8
    X, _ = _clustered(3000, d, 12, seed=5)
    R = alignment.random_orthogonal(d, seed=9)
    pre = alignment.Preprocess.fit(X[:1000])
    XA = pre.transform(X[:1000])                       # source half
    XB = alignment.normalise(pre.transform(X[1000:2000]) @ R)   # target half: other points, rotated
    ev_a, ev_b = pre.transform(X[2000:]), alignment.normalise(pre.transform(X[2000:]) @ R)
    fit = alignment.unsupervised_map(XA, XB, rounds=4, clusters=12, subsample=1000, restarts=10, k=10,
                                     iterations=20, sample=500, seed=0)
    unsup = alignment.retrieval_metrics(ev_a @ fit.W, ev_b)["cosine"].mean()
    rand = alignment.retrieval_metrics(ev_a @ alignment.random_orthogonal(d, 1), ev_b)["cosine"].mean()
    assert unsup > 0.95
    assert rand < 0.5
    # the map is close to the planted rotation
    assert np.linalg.norm(fit.W - R) / np.linalg.norm(R) < 0.1


def test_unsupervised_pipeline_fails_without_shared_structure():
    # control: target = unrelated structure (not a rotation of the source's distribution)
    d = 8
    XA = alignment.normalise(_clustered(1000, d, 12, seed=5)[0])
    XB = alignment.normalise(_clustered(1000, d, 12, seed=6)[0])
    ev_a = alignment.normalise(_clustered(500, d, 12, seed=7)[0])
    ev_b = alignment.normalise(ev_a @ alignment.random_orthogonal(d, seed=9))
    fit = alignment.unsupervised_map(XA, XB, rounds=3, clusters=12, subsample=1000, restarts=5, k=10,
                                     iterations=10, sample=500, seed=0)
    assert alignment.retrieval_metrics(ev_a @ fit.W, ev_b)["cosine"].mean() < 0.8


def test_retrieval_metrics_hand_cases():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    P = np.array([[1.0, 0.1], [1.0, 0.0], [0.0, -1.0]])
    m = alignment.retrieval_metrics(P, Y)
    # row 0: sims (0.995, 0.0995, -0.995) -> rank 1; row 1: sims (1, 0, -1), true is 0 -> rank 2
    # row 2: sims (0, -1, 0): true (0) ties with candidate 0 -> counted ahead, rank 2
    np.testing.assert_array_equal(m["rank"], [1, 2, 2])
    np.testing.assert_array_equal(m["top1"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(m["cosine"], [1 / np.sqrt(1.01), 0.0, 0.0], atol=1e-12)
    perfect = alignment.retrieval_metrics(np.eye(4), np.eye(4))
    np.testing.assert_array_equal(perfect["rank"], [1, 1, 1, 1])


def test_relative_and_mutual_nearest():
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(alignment.relative(X, np.array([[1.0, 1.0]])), [[2**-0.5], [2**-0.5]])
    RA = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    RB = np.array([[0.0, 1.0], [1.0, 0.0]])
    i, j, _ = alignment.mutual_nearest(RA, RB)
    np.testing.assert_array_equal(i, [0, 1])
    np.testing.assert_array_equal(j, [1, 0])


def test_bootstrap_anchors_grows_true_pairs_from_a_few_seeds():
    d = 10
    X, _ = _clustered(400, d, 8, seed=3, spread=0.4)
    R = alignment.random_orthogonal(d, seed=2)
    XA = alignment.normalise(X)
    shuffle = np.random.default_rng(0).permutation(400)
    XB = alignment.normalise(X @ R)[shuffle]           # XB[b] is XA[shuffle[b]]
    truth = shuffle.argsort()                          # XA[a] is XB[truth[a]]
    seeds = np.array([[a, truth[a]] for a in range(12)])
    pairs = alignment.bootstrap_anchors(XA, XB, seeds, target=100, per_round=20)
    assert len(pairs) == 100
    np.testing.assert_array_equal(pairs[:12], seeds)
    assert len(set(pairs[:, 0])) == 100 and len(set(pairs[:, 1])) == 100
    precision = np.mean(truth[pairs[12:, 0]] == pairs[12:, 1])
    assert precision > 0.8
