import math

import numpy as np
import pytest

from embrepro import retrieval


def test_metrics_match_a_hand_computed_case():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}, "q3": {"d9": 1}}
    run = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 2.0, "d2": 1.0}}  # q3 retrieved nothing
    mean, per_query = retrieval.evaluate_run(qrels, run, ["ndcg@10", "recall@2", "mrr"])
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = 1 / math.log2(3)
    assert per_query["q1"]["ndcg@10"] == pytest.approx(100 * ndcg_q1)
    assert per_query["q2"]["ndcg@10"] == pytest.approx(100 * ndcg_q2)
    assert per_query["q1"]["recall@2"] == pytest.approx(50.0)
    assert per_query["q2"]["mrr"] == pytest.approx(50.0)
    assert per_query["q3"] == {"ndcg@10": 0.0, "recall@2": 0.0, "mrr": 0.0}
    assert mean["ndcg@10"] == pytest.approx(100 * (ndcg_q1 + ndcg_q2) / 3)
    with pytest.raises(ValueError, match="unknown metric"):
        retrieval.evaluate_run(qrels, run, ["ndcg"])


def test_scifact_and_limit_small_have_their_published_sizes():
    scifact = retrieval.load_scifact()
    assert len(scifact.corpus) == 5183 and len(scifact.queries) == 300
    assert sum(len(v) for v in scifact.qrels.values()) == 339
    limit = retrieval.load_limit_small()
    assert len(limit.corpus) == 46 and len(limit.queries) == 1000
    assert all(len(v) == 2 for v in limit.qrels.values())  # every LIMIT query has two relevant people


def test_bm25_finds_the_document_a_query_copies():
    data = retrieval.load_scifact()
    some = list(data.corpus)[:20]
    probe = retrieval.RetrievalData("probe", data.corpus, {f"q{i}": data.corpus[d]["title"] for i, d in enumerate(some)},
                                    {f"q{i}": {d: 1} for i, d in enumerate(some)})
    mean, _ = retrieval.evaluate_run(probe.qrels, retrieval.bm25_run(probe, k=10), ["mrr"])
    assert mean["mrr"] > 90


def test_top_k_and_dense_scores():
    q = np.array([[1.0, 0.0], [0.0, 2.0]])
    d = np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    scores = retrieval.dense_scores(q, d)
    assert scores[0, 0] == pytest.approx(1 / math.sqrt(1.01)) and scores[1, 1] == pytest.approx(1.0)
    run = retrieval.top_k(scores, ["a", "b", "c"], ["q0", "q1"], k=2)
    assert set(run["q0"]) == {"a", "b"} and set(run["q1"]) == {"a", "b"}


def test_embedding_cache_encodes_each_text_list_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path))
    calls = []

    def encode(texts):
        calls.append(len(texts))
        return np.arange(len(texts) * 3, dtype=float).reshape(len(texts), 3)

    cache = retrieval.EmbeddingCache("toy-model", "rev1", encode)
    first = cache.get(["a", "b"], kind="doc")
    again = retrieval.EmbeddingCache("toy-model", "rev1", encode).get(["a", "b"], kind="doc")
    assert calls == [2] and np.array_equal(first, again)
    retrieval.EmbeddingCache("toy-model", "rev2", encode).get(["a", "b"], kind="doc")  # new revision
    cache.get(["a", "b", "c"], kind="doc")  # new texts
    assert calls == [2, 2, 3] and cache.hits == 0 and cache.misses == 2
    bf16 = retrieval.EmbeddingCache("toy-model", "rev1", encode, precision="bf16")
    bf16.get(["a", "b"], kind="doc")  # same model and texts at another precision: encoded again
    assert calls == [2, 2, 3, 2] and bf16.misses == 1
    assert retrieval.EmbeddingCache("toy-model", "rev1", encode, precision="fp32").get(["a", "b"], kind="doc") is not None
    assert calls == [2, 2, 3, 2]  # fp32 is the default precision: the first entry is served
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        retrieval.EmbeddingCache("toy-model", "rev1", encode, precision="fp16")
