"""The word2vec chapter's helpers: equal-time budgets, the floor, paired intervals, question subsets."""

import math

import numpy as np
import pytest

from embrepro import stats, w2v
from embrepro.claims import Direction, NoLoss, Outcome


def test_equal_time_words_gives_the_slower_arm_fewer_words():
    # A takes 1.5x as long per word as B: B reads the corpus, A two thirds of it
    assert w2v.equal_time_words(900, 1.5) == {"A": 600, "B": 900}
    # A is twice as fast (time ratio 0.5): A reads the corpus, B half of it
    assert w2v.equal_time_words(900, 0.5) == {"A": 900, "B": 450}
    assert w2v.equal_time_words(900, 1.0) == {"A": 900, "B": 900}
    with pytest.raises(ValueError):
        w2v.equal_time_words(900, 0.0)
    with pytest.raises(ValueError):
        w2v.equal_time_words(0, 1.2)


def test_quantise_ratio_absorbs_jitter_below_the_step():
    assert w2v.quantise_ratio(1.47, 0.1) == pytest.approx(1.5)
    assert w2v.quantise_ratio(1.53, 0.1) == pytest.approx(1.5)
    assert w2v.quantise_ratio(0.66, 0.1) == pytest.approx(0.7)
    assert w2v.quantise_ratio(0.01, 0.1) == pytest.approx(0.1)  # never zero
    with pytest.raises(ValueError):
        w2v.quantise_ratio(math.inf, 0.1)


def test_floor_is_a_fraction_of_the_reference():
    assert w2v.floor_from_reference(48.0, 0.25) == pytest.approx(12.0)
    with pytest.raises(ValueError):
        w2v.floor_from_reference(48.0, 0.0)
    with pytest.raises(ValueError):
        w2v.floor_from_reference(148.0, 0.5)


def test_accuracy_difference_one_seed_is_a_paired_bootstrap_over_questions():
    a = np.array([1, 1, 1, 0, 1, 0, 1, 1] * 25, dtype=bool)
    b = np.array([1, 0, 1, 0, 0, 0, 1, 0] * 25, dtype=bool)
    iv = w2v.accuracy_difference(a, b, n_boot=500)
    assert iv.estimate == pytest.approx(100 * (6 - 3) / 8)
    assert iv.low > 0 and "paired bootstrap" in iv.method
    # NEG wins clearly: a direction rule says reproduced; reversed, it must say not reproduced
    assert Direction(delta=1.0).judge(iv) == Outcome.REPRODUCED
    assert Direction(delta=1.0).judge(w2v.accuracy_difference(b, a, n_boot=500)) == Outcome.NOT_REPRODUCED


def test_accuracy_difference_identical_arms_is_a_tie_not_a_win():
    a = np.array([1, 0] * 100, dtype=bool)
    iv = w2v.accuracy_difference(a, a.copy(), n_boot=200)
    assert iv.estimate == 0 and iv.low == 0 and iv.high == 0
    assert Direction(delta=1.0).judge(iv) == Outcome.NOT_REPRODUCED  # upper bound 0 < delta
    assert NoLoss(margin=2.0).judge(iv) == Outcome.REPRODUCED


def test_accuracy_difference_takes_the_wider_of_seed_and_item_intervals():
    rng = np.random.default_rng(0)
    a = rng.random((3, 400)) < np.array([[0.5], [0.2], [0.8]])  # seeds disagree a lot
    b = rng.random((3, 400)) < 0.45
    iv = w2v.accuracy_difference(a, b, n_boot=300)
    items = stats.paired_bootstrap(100 * a.mean(0), 100 * b.mean(0), n_boot=300)
    seeds = stats.seed_difference(100 * a.mean(1), 100 * b.mean(1))
    assert iv.high - iv.low == pytest.approx(max(items.high - items.low, seeds.high - seeds.low))
    assert iv.high - iv.low > items.high - items.low  # here the seed interval is the wider
    with pytest.raises(ValueError):
        w2v.accuracy_difference(a, b[:2])


def test_filter_analogy_file_keeps_only_the_asked_questions(tmp_path):
    source = tmp_path / "q.txt"
    source.write_text(": capital\nathens greece oslo norway\nrome italy paris france\n"
                      ": gram1\ngood better bad worse\n")
    out = w2v.filter_analogy_file(["ROME ITALY PARIS FRANCE", "GOOD BETTER BAD WORSE"], source, tmp_path / "o")
    assert out.read_text() == ": capital\nrome italy paris france\n: gram1\ngood better bad worse\n"


def test_word_counts():
    counts, tokens, lines = w2v.word_counts([["a", "b", "a"], ["c"]])
    assert counts == {"a": 2, "b": 1, "c": 1} and tokens == 4 and lines == 2


def test_relative_cost_starts_the_slow_jobs_first():
    def job(tokens, **settings):
        return w2v.Job("a", settings, 0, "x", tokens, 1, 1, 10, 5, 5, 100)

    neg5, neg15, hs = job(1000, sg=1, negative=5), job(1000, sg=1, negative=15), job(1000, sg=1, hs=1, negative=0)
    sub, cbow = job(1000, sg=1, negative=5, sample=1e-5), job(1000, sg=0, negative=5)
    assert w2v.relative_cost(neg15) > w2v.relative_cost(neg5) > w2v.relative_cost(hs) > w2v.relative_cost(sub)
    assert w2v.relative_cost(cbow) < w2v.relative_cost(neg5)
    assert w2v.relative_cost(job(2000, sg=1, negative=5)) == 2 * w2v.relative_cost(neg5)
