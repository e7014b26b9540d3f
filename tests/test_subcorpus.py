"""Tests of embrepro.subcorpus and the SciFact training split."""

import numpy as np
import pytest

from embrepro import subcorpus
from embrepro.data.benchmarks import RetrievalData, load_scifact
from embrepro.subcorpus import load_scifact_train


def _toy():
    corpus = {f"d{i}": {"title": "", "text": f"word{i}"} for i in range(10)}
    return RetrievalData("toy", corpus, {"q1": "find 2", "q2": "find 7"}, {"q1": {"d2": 1}, "q2": {"d7": 1, "d9": 0}})


def test_keeps_gold_adds_seeded_distractors_in_corpus_order():
    data = _toy()
    small = subcorpus.gold_plus_distractors(data, 5, seed=0)
    assert len(small.corpus) == 5 and {"d2", "d7"} <= set(small.corpus)
    assert list(small.corpus) == sorted(small.corpus, key=lambda d: int(d[1:]))
    assert small.corpus.keys() == subcorpus.gold_plus_distractors(data, 5, seed=0).corpus.keys()
    assert len({tuple(subcorpus.gold_plus_distractors(data, 5, seed=s).corpus) for s in range(5)}) > 1
    with pytest.raises(ValueError, match="relevant"):
        subcorpus.gold_plus_distractors(data, 1)


def _one_hot(texts, sign_of_queries=1.0):
    out = np.zeros((len(texts), 10))
    for i, t in enumerate(texts):
        out[i, int(t.split("word")[-1].split()[-1])] = sign_of_queries if t.startswith("find") else 1.0
    return out


def test_dense_evaluation_scores_a_perfect_and_a_useless_encoder():
    data = _toy()
    mean, per_query = subcorpus.dense_evaluation(_one_hot, data)
    assert mean["ndcg@10"] == pytest.approx(100.0) and set(per_query) == {"q1", "q2"}
    # queries pointing away from their document: it ranks last of the ten
    worst, _ = subcorpus.dense_evaluation(lambda texts: _one_hot(texts, -1.0), data, metrics=("ndcg@1", "recall@9"))
    assert worst["ndcg@1"] == 0.0 and worst["recall@9"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        subcorpus.dense_evaluation(lambda texts: np.zeros((2, 3)), data)


def test_scifact_train_split_is_beirs_and_disjoint_from_test():
    train, test = load_scifact_train(), load_scifact()
    assert len(train.queries) == 809 and sum(map(len, train.qrels.values())) == 919
    assert not set(train.queries) & set(test.queries)
    small = subcorpus.gold_plus_distractors(test, 1000, seed=0)
    assert len(small.corpus) == 1000
    assert all(d in small.corpus for rel in test.qrels.values() for d in rel)
