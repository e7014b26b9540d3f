"""embrepro.hubness against hand-computed cases."""

import numpy as np
import pytest
from scipy.stats import norm

from embrepro import hubness as hub


def test_k_occurrence_counts_and_weights():
    nb = np.array([[0, 1], [0, 2], [0, 1]])
    assert hub.k_occurrence(nb, 4).tolist() == [3, 2, 1, 0]
    # a bootstrap resample that takes query 0 twice, query 1 never
    assert hub.k_occurrence(nb, 4, weights=[2, 0, 1]).tolist() == [3, 3, 0, 0]


def test_skewness_and_robin_hood_by_hand():
    assert hub.k_skewness([0, 0, 0, 3]) == pytest.approx(2 / np.sqrt(3))
    assert hub.robin_hood([3, 2, 1, 0]) == pytest.approx(4 / 12)
    assert hub.robin_hood([2, 2, 2]) == 0.0
    assert hub.k_skewness([1, 2, 3]) == pytest.approx(0.0)


def test_centering_uses_the_reference_mean():
    c = hub.Centering().fit(np.array([[1.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_allclose(c.transform([[1.0, 0.0], [2.0, 5.0]]), [[-1.0, 0.0], [0.0, 1.0]])


def test_fnorm_maps_ranks_to_normal_quantiles_then_normalises():
    R = np.array([[3.0, 10.0], [1.0, 30.0], [2.0, 20.0]])
    f = hub.FNorm().fit(R)
    q = norm.ppf(5 / 6)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(f.transform(R[:2]), [[s, -s], [-s, s]], atol=1e-12)
    np.testing.assert_allclose(f.transform(R[2:]), [[0.0, 0.0]], atol=1e-12)  # both medians: the zero vector
    # a query between the first two ranks is interpolated; one outside R's range is clipped
    z = np.array([-q / 2, -q])
    np.testing.assert_allclose(f.transform([[1.5, 10.0]]), [z / np.linalg.norm(z)], atol=1e-12)
    np.testing.assert_allclose(f.transform([[100.0, -5.0]]), [[s, -s]], atol=1e-12)
    # fitted on R only: a query's image does not depend on the other queries
    Q = np.random.default_rng(0).normal(10, 5, size=(5, 2))
    np.testing.assert_allclose(f.transform(Q)[:1], f.transform(Q[:1]))


def test_knn_graph_order_ties_and_self_exclusion():
    R = np.array([[0.0], [1.0], [3.0]])
    d, i = hub.knn_graph(np.array([[0.9]]), R, 2)
    assert i.tolist() == [[1, 0]]
    np.testing.assert_allclose(d, [[0.1, 0.9]], atol=1e-6)
    d, i = hub.reference_graph(R, 1)
    assert i.ravel().tolist() == [1, 0, 1]
    np.testing.assert_allclose(d.ravel(), [1, 1, 2], atol=1e-6)
    _, i = hub.knn_graph(np.array([[1.0]]), np.array([[0.0], [2.0]]), 2)
    assert i.tolist() == [[0, 1]]  # equal distances: lower index first


def test_mutual_proximity_by_hand():
    dist, idx = np.array([[1.0, 3.0]]), np.array([[0, 1]])
    ref_dist = np.array([[1.0, 3.0], [2.0, 4.0]])  # reference 0: mean 2, sd 1; reference 1: mean 3, sd 1
    d, i = hub.mutual_proximity(dist, idx, ref_dist)
    assert i.tolist() == [[0, 1]]
    np.testing.assert_allclose(d, [[1 - norm.sf(-1) ** 2, 1 - norm.sf(1) * 0.5]])


def test_mutual_proximity_demotes_a_hub():
    # the query is slightly closer to reference 0, but 0 is close to everything (a hub) and 1 is not
    dist, idx = np.array([[1.0, 1.1, 1.5]]), np.array([[0, 1, 2]])
    ref_dist = np.array([[0.4, 0.5, 0.6], [1.9, 2.0, 2.1], [1.4, 1.5, 1.6]])
    _, i = hub.mutual_proximity(dist, idx, ref_dist)
    assert i[0, 0] == 1


def test_local_scaling_by_hand():
    dist, idx = np.array([[1.0, 2.0]]), np.array([[0, 1]])
    d, i = hub.local_scaling(dist, idx, np.array([[1.0], [8.0]]), k=1)  # sigma_q = 1; sigma_r = 1, 8
    assert i.tolist() == [[1, 0]]
    np.testing.assert_allclose(d, [[1 - np.exp(-0.5), 1 - np.exp(-1.0)]])


def test_csls_by_hand():
    R = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]])
    d, i = hub.csls(np.array([[1.0, 0.0]]), R, n_candidates=3, k=1)
    # r(ref) = cosine to the nearest other reference: .8, .96, .96; r(q) = 1
    assert i.tolist() == [[0, 1, 2]]
    np.testing.assert_allclose(d, [[1 - (2 - 1 - 0.8) / 2, 1 - (1.6 - 1 - 0.96) / 2, 1 - (1.2 - 1 - 0.96) / 2]],
                               atol=1e-6)


def test_knn_vote_weights_ties_and_zero_distance():
    labels = np.array([0, 1, 1])
    dist, idx = np.array([[0.5, 1.0, 1.0]]), np.array([[0, 1, 2]])
    assert hub.knn_predict(dist, idx, labels, 3, 2).tolist() == [0]  # 2 vs 2: the lower class
    assert hub.knn_predict(dist, idx, labels, 3, 2, weights="uniform").tolist() == [1]
    assert hub.knn_predict(np.array([[0.0, 0.1, 0.1]]), idx, labels, 3, 2).tolist() == [0]
    assert hub.knn_error(dist, idx, labels, [1], 3, 2, weights="uniform").tolist() == [0.0]
    with pytest.raises(ValueError):
        hub.knn_predict(dist, idx, labels, 3, 2, weights="cosine")


def test_high_dimensional_gaussians_have_hubs_that_mp_removes_and_low_dimensional_ones_do_not():
    rng = np.random.default_rng(0)
    skews = {}
    for dim in (2, 100):
        R, Q = rng.normal(size=(800, dim)), rng.normal(size=(400, dim))
        dist, idx = hub.knn_graph(Q, R, 100)
        ref_dist, _ = hub.reference_graph(R, 100)
        _, idx_mp = hub.mutual_proximity(dist, idx, ref_dist)
        skews[dim] = (hub.k_skewness(hub.k_occurrence(idx[:, :10], 800)),
                      hub.k_skewness(hub.k_occurrence(idx_mp[:, :10], 800)))
    assert skews[100][0] > 1.0 and skews[100][1] < 0.5 * skews[100][0]  # hubness, and MP cuts it
    assert skews[2][0] < 0.7  # little hubness in two dimensions: nothing much to reduce


def test_choose_k_uses_leave_one_out_errors_and_prefers_the_smaller_k_on_ties():
    # four references on a line, labels 0 0 1 1; each one's own graph without itself
    R = np.array([[0.0], [1.0], [2.0], [3.0]])
    labels = np.array([0, 0, 1, 1])
    dist, idx = hub.reference_graph(R, 3)
    best, errors = hub.choose_k(dist, idx, labels, [1, 3], 2, weights="uniform")
    # k = 1: items 1 and 2 have two neighbours at distance 1 (the lower index wins): item 1 -> 0 (right),
    # item 2 -> 1 (wrong); k = 3: every item sees one of its own class and two of the other (all wrong)
    assert errors[1] == pytest.approx(0.25)
    assert errors[3] == pytest.approx(1.0)
    assert best == 1
    assert hub.choose_k(dist, idx, labels, [3, 1], 2, weights="uniform")[0] == 1


def test_csls_leave_one_out_never_returns_the_query_itself():
    R = np.random.default_rng(1).normal(size=(20, 5))
    _, i = hub.csls(R, R, n_candidates=5, k=3, exclude_self=True)
    assert not (i == np.arange(20)[:, None]).any()


def test_csls_with_its_reference_graph_computed_once_gives_the_same_graphs():
    rng = np.random.default_rng(3)
    R, Q = rng.normal(size=(60, 8)), rng.normal(size=(25, 8))
    ref = hub.csls_reference(R, 12)
    for exclude_self, queries in ((False, Q), (True, R)):
        alone = hub.csls(queries, R, n_candidates=12, k=4, exclude_self=exclude_self)
        shared = hub.csls(queries, R, n_candidates=12, k=4, exclude_self=exclude_self, reference=ref)
        assert np.array_equal(alone[0], shared[0]) and np.array_equal(alone[1], shared[1])
    with pytest.raises(ValueError, match="has 3 neighbours"):  # too small a graph is refused, not truncated
        hub.csls(R, R, n_candidates=12, k=4, exclude_self=True, reference=hub.csls_reference(R, 3))
