"""word_similarity_oov hands back the per-pair cosines that the fastText chapter's paired bootstrap needs."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from embrepro import data, evaluation, stats


@pytest.fixture
def four_pairs(monkeypatch):
    # gold rises 1..4; "xylo" has no vector
    pairs = data.WordPairs("toy", [("a", "b"), ("a", "c"), ("a", "xylo"), ("b", "c")], [1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(evaluation, "load_word_similarity", lambda name: pairs)
    return pairs


def keyed(words: dict[str, list[float]]) -> KeyedVectors:
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    return kv


def test_null_policy_returns_every_pair_in_order_with_zero_for_unseen(four_pairs):
    kv = keyed({"a": [1.0, 0.0], "b": [-1.0, 0.0], "c": [0.0, 1.0]})
    r = evaluation.word_similarity_oov(kv, "toy", "null")
    assert r["cosines"] == pytest.approx([-1.0, 0.0, 0.0, 0.0])
    assert list(r["gold"]) == [1.0, 2.0, 3.0, 4.0]
    assert r["spearman"] == pytest.approx(stats.spearman(r["cosines"], r["gold"]))


def test_skip_policy_returns_only_the_covered_pairs(four_pairs):
    kv = keyed({"a": [1.0, 0.0], "b": [-1.0, 0.2], "c": [1.0, 1.0]})
    r = evaluation.word_similarity_oov(kv, "toy", "skip")
    assert len(r["cosines"]) == len(r["gold"]) == r["scored"] == 3
    assert list(r["gold"]) == [1.0, 2.0, 4.0]
    assert r["cosines"][1] == pytest.approx(1 / np.sqrt(2), abs=1e-6)


def test_aligned_cosines_feed_a_paired_spearman_difference(four_pairs):
    better = keyed({"a": [1.0, 0.0], "b": [-1.0, 0.2], "c": [1.0, 1.0], "xylo": [0.0, 1.0]})
    worse = keyed({"a": [1.0, 0.0], "b": [1.0, 0.1], "c": [-1.0, 0.3]})
    a = evaluation.word_similarity_oov(better, "toy", "null")
    b = evaluation.word_similarity_oov(worse, "toy", "null")
    diff = stats.spearman_difference(a["cosines"], b["cosines"], a["gold"], n_boot=200, seed=0)
    assert diff.estimate == pytest.approx(a["spearman"] - b["spearman"])
    assert diff.low <= diff.estimate <= diff.high
