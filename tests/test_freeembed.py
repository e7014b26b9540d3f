import math

import pytest
import torch

from embrepro import freeembed


def test_subset_queries_and_accuracy():
    q = freeembed.subset_queries(4, 2)
    assert q.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    assert len(freeembed.subset_queries(46, 2)) == math.comb(46, 2)
    scores = torch.tensor([[3.0, 2.0, 0.0], [0.0, 2.0, 3.0]])
    assert freeembed.top_k_accuracy(scores, torch.tensor([[0, 1], [1, 2]])) == 1.0
    assert freeembed.top_k_accuracy(scores, torch.tensor([[0, 2], [1, 2]])) == 0.75
    with pytest.raises(ValueError):
        freeembed.subset_queries(2, 3)


def test_hand_written_gradient_matches_autograd():
    # fit() writes the InfoNCE gradient out by hand; check it against autograd on one step.
    torch.manual_seed(0)
    n, d, temp = 5, 3, 0.1
    rel = freeembed.subset_queries(n, 2)
    target = torch.zeros(len(rel), n).scatter_(1, rel, 0.5)
    Q = torch.nn.functional.normalize(torch.randn(len(rel), d), dim=1).requires_grad_()
    D = torch.nn.functional.normalize(torch.randn(n, d), dim=1).requires_grad_()
    loss = -(target * torch.log_softmax(Q @ D.T / temp, 1)).sum() / len(rel)
    loss.backward()
    with torch.no_grad():
        g = (torch.softmax(Q @ D.T / temp, 1) - target) / (len(rel) * temp)
        assert torch.allclose(g @ D, Q.grad, atol=1e-6)
        assert torch.allclose(g.T @ Q, D.grad, atol=1e-6)


def test_fit_solves_a_feasible_case_and_fails_an_impossible_one():
    # On the unit circle the top-2 of any query are neighbours in angular order, so with 5
    # documents at least one pair (two non-neighbours) can never be a top-2: d = 2, n = 5 must fail.
    ok = freeembed.fit(3, 2, seed=0, max_steps=2000, patience=500)
    assert ok.success and ok.stopped == "solved" and ok.accuracy == 1.0
    bad = freeembed.fit(5, 2, seed=0, max_steps=1500, patience=300)
    assert not bad.success and bad.accuracy < 1.0 and bad.stopped in ("plateau", "budget")
    assert freeembed.fit(8, 4, seed=0, max_steps=3000, patience=500).success  # 4 dimensions hold 8 documents


def test_critical_n_search_finds_the_threshold_with_few_probes():
    for threshold in (2, 3, 7, 37, 1000):
        for start in (3, 10, 50):
            found = freeembed.critical_n(lambda n: n <= threshold, start=start, lowest=2)
            assert found.n == threshold
            assert len({n for n, _ in found.probes}) == len(found.probes)  # no n probed twice
            assert len(found.probes) <= 2 * math.log2(threshold + start) + 4


def test_critical_n_of_two_dimensions_is_three():
    # The d = 2 case end to end: 3 documents pass (any pair of 3 points on a circle is adjacent), 4 fail.
    rows = freeembed.critical_n_curve([2], seeds=[0], workers=1, max_steps=1500, patience=300)
    assert rows[0]["critical_n"] == 3 and rows[0]["d"] == 2
    assert {f["n"]: f["success"] for f in rows[0]["fits"]}[3] is True
