import math

import numpy as np
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


def test_official_gallop_and_sweep_find_the_threshold():
    for threshold in (2, 3, 7, 37, 200):
        for start in (3, 10, 50):
            found = freeembed.critical_n(lambda n: n <= threshold, start=start, lowest=2, gallop="official",
                                         sweep=(-4, 5))
            assert found.n == found.bisected == threshold
            assert len({n for n, _ in found.probes}) == len(found.probes)


def test_sweep_takes_the_largest_success_near_the_bisection():
    # A probe that is not monotone in n: 11 and 12 fail (say, stalled), 13 passes, 14 on fail again.
    calls = []

    def passes(n):
        calls.append(n)
        return n <= 10 or n == 13

    # official gallop from 3: 4, 6, 10 pass, 18 fails; bisection 14, 12, 11 fail -> 10
    plain = freeembed.critical_n(passes, start=3, lowest=2, gallop="official")
    assert plain.n == plain.bisected == 10
    assert [n for n, _ in plain.probes] == [3, 4, 6, 10, 18, 14, 12, 11]
    calls.clear()
    swept = freeembed.critical_n(passes, start=3, lowest=2, gallop="official", sweep=(-4, 5))
    assert swept.bisected == 10 and swept.n == 13
    # the sweep probes 6..15 and reuses the eight earlier answers: new probes are 7, 8, 9, 13 and 15
    assert calls == [3, 4, 6, 10, 18, 14, 12, 11, 7, 8, 9, 13, 15]
    # a success beyond N + 5 is out of the sweep's reach
    far = freeembed.critical_n(lambda n: n <= 10 or n == 16, start=3, lowest=2, gallop="official", sweep=(-4, 5))
    assert far.n == 10


def test_official_gallop_goes_down_when_the_start_fails():
    found = freeembed.critical_n(lambda n: n <= 5, start=20, lowest=2, gallop="official")
    # down by 1, 2, 4, 8: 19, 17, 13, 5 (passes); bisection between 5 and 13: 9, 7, 6
    assert [n for n, _ in found.probes] == [20, 19, 17, 13, 5, 9, 7, 6]
    assert found.n == 5
    assert freeembed.critical_n(lambda n: False, start=6, lowest=2, gallop="official").n == 2
    with pytest.raises(ValueError, match="gallop"):
        freeembed.critical_n(lambda n: True, gallop="doubling")


def _judge_shape(interval):
    from embrepro.claims import Shape

    return str(Shape(statistic="the quadratic coefficient", bar=0.0).judge(interval))


DIMS = [4, 6, 8, 10, 12, 16, 20]


def _curve(values_of_d, noise_seed=0):
    rng = np.random.default_rng(noise_seed)
    d, n, s = [], [], []
    for seed in range(3):
        for dim in DIMS:
            d.append(dim)
            n.append(round(values_of_d(dim) + rng.normal(0, 1.0)))
            s.append(seed)
    return np.array(d), np.array(n, float), np.array(s)


def test_convexity_rule_does_not_pass_a_straight_line_with_negative_intercept():
    # n = 6 d - 14: a straight line, with the paper-like size at d = 20. The old test (log-log slope
    # above 1) passes it; the second-order coefficient's interval straddles 0: inconclusive.
    d, n, s = _curve(lambda x: 6 * x - 14)
    assert freeembed.loglog_slope(d, n) > 1.2
    iv = freeembed.convexity(d, n, s)
    assert iv.low < 0 < iv.high
    assert _judge_shape(iv) == "inconclusive"


def test_convexity_rule_says_not_reproduced_for_a_concave_curve_and_reproduced_for_the_papers_cubic():
    d, n, s = _curve(lambda x: 40 * math.sqrt(x) - 70)           # concave, also log-log slope > 1
    assert freeembed.loglog_slope(d, n) > 1
    assert _judge_shape(freeembed.convexity(d, n, s)) == "not reproduced"
    d, n, s = _curve(freeembed.paper_fit)                          # the paper's cubic, 4.3 to 120.7
    iv = freeembed.convexity(d, n, s)
    assert _judge_shape(iv) == "reproduced"
    # its average second-order coefficient over 4..20: 0.052 + 3 * 0.0037 * mean(d) is about 0.17
    assert 0.1 < iv.estimate < 0.25
    # the wider of the pooled and the per-seed intervals is used
    pooled = freeembed.convexity(d, n)
    assert iv.high - iv.low >= pooled.high - pooled.low - 1e-12


def test_convexity_needs_three_dimensions():
    with pytest.raises(ValueError):
        freeembed.convexity([2, 3, 4, 6], [3, 4, 6, 9])   # only d = 4 and 6 are at least 4


@pytest.mark.parametrize("temperature", [0.1, 0.01])
def test_fit_follows_autograd_adam_step_for_step(temperature):
    # fit() computes the loss and its gradient by hand; the same initial vectors trained with autograd
    # and Adam must give the same loss after 40 steps (temperature 0.01 takes the max-shifted path).
    # Adam ignores a constant factor on a parameter's whole gradient, so this checks the gradient up
    # to such a factor: a wrong target weight or a missing softmax normalisation fails it.
    n, d, k, steps = 7, 3, 2, 40
    rel = freeembed.subset_queries(n, k)
    gen = torch.Generator().manual_seed(5)
    Q = torch.nn.functional.normalize(torch.randn(len(rel), d, generator=gen), dim=1).requires_grad_()
    D = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1).requires_grad_()
    target = torch.zeros(len(rel), n).scatter_(1, rel, 1.0 / k)
    opt = torch.optim.Adam([Q, D], lr=0.01)
    for _ in range(steps):
        loss = -(target * torch.log_softmax(Q @ D.T / temperature, 1)).sum() / len(rel)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            Q.div_(Q.norm(dim=1, keepdim=True))
            D.div_(D.norm(dim=1, keepdim=True))
    res = freeembed.fit(n, d, k, seed=5, max_steps=steps, patience=10_000, check_every=10_000,
                        temperature=temperature)
    assert res.steps == steps and res.stopped in ("budget", "solved")
    assert res.loss == pytest.approx(float(loss), rel=1e-4, abs=1e-5)
