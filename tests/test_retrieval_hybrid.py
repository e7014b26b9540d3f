"""Hybrid retrieval helpers: subsets, re-ranking, score fusion, RRF, paired bootstrap."""

import numpy as np
import pytest

from embrepro import retrieval


def _toy() -> retrieval.RetrievalData:
    corpus = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(5)}
    queries = {"q1": "a", "q2": "b", "q3": "c"}
    qrels = {"q1": {"d0": 1, "d4": 1}, "q2": {"d3": 1}, "q3": {"d1": 0, "d2": 1}}
    return retrieval.RetrievalData("toy", corpus, queries, qrels)


def test_subset_keeps_only_queries_with_a_relevant_document_inside():
    sub = _toy().subset(3)
    assert sub.doc_ids == ["d0", "d1", "d2"]
    assert sub.qrels == {"q1": {"d0": 1}, "q3": {"d1": 0, "d2": 1}}  # q2's only relevant doc is outside
    assert list(sub.queries) == ["q1", "q3"]
    assert "first 3 documents" in sub.name


def test_subset_of_scifact_is_self_consistent():
    data = retrieval.load_scifact()
    sub = data.subset(300)
    assert len(sub.corpus) == 300 and 0 < len(sub.queries) < len(data.queries)
    assert all(d in sub.corpus for rel in sub.qrels.values() for d in rel)


def test_rerank_keeps_the_candidates_and_reorders_them():
    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    run = retrieval.rerank({"a": {"x": 5.0, "z": 1.0}, "b": {"y": 2.0}}, scores, ["a", "b"], ["x", "y", "z"])
    assert run == {"a": {"x": 0.1, "z": 0.5}, "b": {"y": 0.2}}


def test_truncate_keeps_the_best():
    assert retrieval.truncate({"q": {"a": 1.0, "b": 3.0, "c": 2.0}}, 2) == {"q": {"b": 3.0, "c": 2.0}}


def test_normalise_minmax_and_zscore():
    run = {"q": {"a": 2.0, "b": 4.0, "c": 6.0}, "empty": {}}
    assert retrieval.normalise(run, "minmax")["q"] == {"a": 0.0, "b": 0.5, "c": 1.0}
    z = retrieval.normalise(run, "zscore")["q"]
    assert z["b"] == pytest.approx(0.0) and z["c"] == pytest.approx(np.sqrt(1.5))
    assert retrieval.normalise({"q": {"a": 3.0}}, "minmax")["q"] == {"a": 1.0}  # a single document
    with pytest.raises(ValueError, match="unknown normalisation"):
        retrieval.normalise(run, "rank")


def test_score_fusion_by_hand():
    sparse = {"q": {"a": 10.0, "b": 5.0, "c": 0.0}}
    dense = {"q": {"b": 0.9, "c": 0.8, "d": 0.4}}
    fused = retrieval.fuse_scores([sparse, dense], [0.5, 0.5])["q"]
    # min-max: sparse a=1, b=0.5, c=0; dense b=1, c=0.8, d=0; missing -> 0
    assert fused == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.4, "d": 0.0})
    only_dense = retrieval.fuse_scores([sparse, dense], [0.0, 1.0])["q"]
    assert max(only_dense, key=only_dense.get) == "b"
    with pytest.raises(ValueError):
        retrieval.fuse_scores([sparse, dense], [1.0])


def test_rrf_by_hand():
    r1 = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
    r2 = {"q": {"c": 0.9, "a": 0.5}}
    fused = retrieval.reciprocal_rank_fusion([r1, r2], k=60)["q"]
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert sorted(fused, key=fused.get, reverse=True) == ["a", "c", "b"]


def test_wins_losses():
    assert retrieval.wins_losses([1, 2, 3, 4], [0, 2, 5, 1]) == (2, 1, 1)


def test_stemming_changes_bm25_matching():
    corpus = {"d1": {"title": "", "text": "the cells were running quickly"},
              "d2": {"title": "", "text": "a quiet library of old books"}}
    data = retrieval.RetrievalData("stem", corpus, {"q": "cell runs"}, {"q": {"d1": 1}})
    assert retrieval.bm25_run(data, k=2) == {"q": {}}  # no shared surface form
    stemmed = retrieval.bm25_run(data, k=2, stemmer="porter")
    assert list(stemmed["q"]) == ["d1"]


def test_fusion_when_one_run_lacks_a_query_and_zscore_floor():
    sparse = {"q1": {"a": 1.0, "b": 3.0}, "q2": {"c": 2.0, "d": 1.0}}
    dense = {"q1": {"a": 0.5, "e": 0.1}}
    fused = retrieval.fuse_scores([sparse, dense], [0.5, 0.5], method="zscore")
    assert fused["q2"] == pytest.approx({"c": 0.5, "d": -0.5})  # only the sparse run speaks for q2
    # e is missing from the sparse run: it gets the sparse run's lowest z-score (-1) for q1
    assert fused["q1"]["e"] == pytest.approx(0.5 * -1 + 0.5 * -1)
    rrf = retrieval.reciprocal_rank_fusion([sparse, dense], k=1)
    assert rrf["q2"] == pytest.approx({"c": 1 / 2, "d": 1 / 3})


def test_encoding_bills_count_each_candidate_once_and_decide_the_budget_rule():
    from embrepro.claims import Outcome, Ratio
    from embrepro.stats import Interval

    doc_ids = [f"d{i}" for i in range(10)]
    pieces = [10, 10, 10, 10, 10, 10, 10, 10, 10, 40]
    # d1 is a candidate of both queries: encoded once. Dense: 130 + 5 = 135; re-ranking: 30 + 5 = 35.
    dense, rerank, chosen = retrieval.encoding_bills({"q1": {"d0": 2.0, "d1": 1.0}, "q2": {"d1": 3.0, "d2": 1.0}},
                                                     doc_ids, pieces, [2, 3])
    assert (dense, rerank, chosen) == (135, 35, [0, 1, 2])
    rule = Ratio(what="dense bill over re-ranking bill", bar=2.0)
    assert rule.judge(Interval(dense / rerank, dense / rerank, dense / rerank)) == Outcome.REPRODUCED
    # Candidate lists that together cover the corpus (many queries, a small corpus): no saving at all.
    everything = {"q1": {d: 1.0 for d in doc_ids[:6]}, "q2": {d: 1.0 for d in doc_ids[4:]}}
    dense, rerank, chosen = retrieval.encoding_bills(everything, doc_ids, pieces, [2, 3])
    assert dense == rerank == 135 and chosen == list(range(10))
    assert rule.judge(Interval(1.0, 1.0, 1.0)) == Outcome.NOT_REPRODUCED
    # The long document d9 alone is a quarter of the corpus' pieces: 135 / (40 + 5) = 3.
    assert retrieval.encoding_bills({"q": {"d9": 1.0}}, doc_ids, pieces, [2, 3])[:2] == (135, 45)
    with pytest.raises(ValueError):
        retrieval.encoding_bills({}, doc_ids, pieces[:-1], [])
