"""Hand-computed cases for embrepro.positional (edits, slopes, sticky score, frequency matching)."""

import numpy as np
import pytest

from embrepro import positional as P

S = ["A one.", "B two.", "C three.", "D four.", "E five."]


def test_split_sentences():
    assert P.split_sentences("First one. Second (2) one! Third? 4 is last.") == \
        ["First one.", "Second (2) one!", "Third?", "4 is last."]
    assert P.split_sentences("e.g. lower case stays. Next") == ["e.g. lower case stays.", "Next"]


def test_edits_at_start_middle_end():
    assert P.edit(S, "insert", "start", "X.") == "X. A one. B two. C three. D four. E five."
    assert P.edit(S, "insert", "middle", "X.") == "A one. B two. X. C three. D four. E five."
    assert P.edit(S, "insert", "end", "X.") == "A one. B two. C three. D four. E five. X."
    assert P.edit(S, "delete", "start") == "B two. C three. D four. E five."
    assert P.edit(S, "delete", "middle") == "A one. B two. D four. E five."
    assert P.edit(S, "delete", "end") == "A one. B two. C three. D four."
    with pytest.raises(ValueError):
        P.edit(S, "insert", "start")
    with pytest.raises(ValueError):
        P.edit(S, "swap", "start")
    with pytest.raises(ValueError):
        P.edit(S, "delete", "top")


def test_leave_one_out_and_positions():
    loo = P.leave_one_out(S[:3])
    assert loo == ["B two. C three.", "A one. C three.", "A one. B two."]
    assert np.allclose(P.relative_positions(5), [0, 0.25, 0.5, 0.75, 1])


def test_cosine_distance():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    assert np.allclose(P.cosine_distance(a, b), [1.0, 0.0, 1.0])


def test_within_slope_uses_only_within_document_order():
    # doc 1: importance falls 0.3 -> 0.1 over positions 0..1 (slope -0.2); doc 2: flat at a high level
    v = [np.array([0.3, 0.2, 0.1]), np.array([0.9, 0.9, 0.9])]
    p = [np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0])]
    assert P.within_slope(v, p) == pytest.approx(-0.1)     # pooled: (-0.1 + 0) / (0.5 + 0.5)
    assert P.within_slope([v[0]], [p[0]]) == pytest.approx(-0.2)
    # a rising document gives a positive slope: the rule can go the other way
    assert P.within_slope([v[0][::-1]], [p[0]]) == pytest.approx(0.2)


def test_sticky_variants_follow_the_official_layout():
    rng = np.random.default_rng(0)
    v = P.sticky_variants("a b", "t", 3, rng)
    assert v["prefix"] == ["ta b", "tta b", "ttta b"]
    assert v["suffix"] == ["a bt", "a btt", "a bttt"]
    assert [s.split().count("t") for s in v["insert"]] == [1, 2, 3]
    assert all(s.replace("t", "").split() == ["a", "b"] for s in v["insert"])
    spaced = P.sticky_variants("a b", "t", 2, rng, joiner=" ")
    assert spaced["prefix"] == ["t a b", "t t a b"]


def test_sticky_score_hand_case():
    base = np.array([0.5, 0.5])
    variants = {  # pair 0 gets closer under prefix and insert; pair 1 only under suffix
        "prefix": np.array([[0.4, 0.4], [0.6, 0.6]]),
        "suffix": np.array([[0.6, 0.6], [0.3, 0.5]]),
        "insert": np.array([[0.2, 0.7], [0.5, 0.5]]),    # pair 1: mean equals base -> a tie never counts
    }
    expected = 4 / 11 * 0.5 + 4 / 11 * 0.5 + 3 / 11 * 0.5
    assert P.sticky_score(base, variants) == pytest.approx(expected)
    assert P.sticky_score(base, variants, items=np.array([1, 1])) == pytest.approx(4 / 11)
    # similarity gain: prefix (0.1 - 0.1)/2 = 0, suffix (-0.1 + 0.1)/2 = 0, insert (0.05 + 0)/2
    assert P.similarity_gain(base, variants) == pytest.approx(3 / 11 * 0.025)
    far = {k: np.full((2, 2), 0.9) for k in variants}
    assert P.sticky_score(base, far) == 0.0
    with pytest.raises(ValueError):
        P.sticky_score(base, {"prefix": variants["prefix"]})


def test_exceed_count():
    controls = np.arange(1, 21)            # 95th percentile = 19.05
    assert P.exceed_count([19.0, 19.1, 25.0, 0.0], controls) == 2
    assert P.exceed_count([1, 2], controls) == 0


def test_frequency_matched():
    counts = {"a": 100, "b": 0, "c": 90, "d": 110, "e": 1000, "f": 0, "g": 0, "x": 5}
    m = P.frequency_matched(counts, ["a", "b"], list("abcdefgx"), k=2, seed=0)
    assert sorted(m["a"]) == ["c", "d"]
    assert sorted(m["b"]) == ["f", "g"]
    assert len(set(m["a"]) | set(m["b"])) == 4          # no control used twice, no target a control
    assert not ({"a", "b"} & set(m["a"] + m["b"]))
    assert m == P.frequency_matched(counts, ["a", "b"], list("abcdefgx"), k=2, seed=0)
    with pytest.raises(ValueError):
        P.frequency_matched(counts, ["a", "b"], list("abc"), k=2)


def test_sample_by_similarity():
    sims = np.array([0.0, 0.1, 0.2, 0.5, 0.51, 0.9])
    picks = P.sample_by_similarity(sims, 3, 0.0, 0.5)
    assert list(picks) == [0, 2, 3]
    # a crowded target takes the next nearest untaken item
    picks = P.sample_by_similarity(sims, 3, 0.5, 0.5)
    assert sorted(picks) == [2, 3, 4]
