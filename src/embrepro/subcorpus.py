"""A small retrieval test for chapters that fine-tune an encoder: gold documents plus distractors.

Encoding SciFact's 5,183 abstracts takes minutes on two cores, and a chapter that fine-tunes an
encoder must encode them again after every training run: no cache can help, since the weights
change. :func:`gold_plus_distractors` keeps every document relevant to the test queries and a
seeded random sample of the others, so a chapter can compare encoders on a few hundred documents.
Scores on a sub-corpus are higher than on the full corpus (fewer distractors): compare arms with
each other on the same sub-corpus, never with published full-corpus numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence

import numpy as np

from embrepro.data.benchmarks import RetrievalData, load_scifact
from embrepro.data.manifest import fetch

__all__ = ["dense_evaluation", "gold_plus_distractors", "load_scifact_train"]


def gold_plus_distractors(data: RetrievalData, n_docs: int, seed: int = 0) -> RetrievalData:
    """Every relevant document of ``data`` plus random others, ``n_docs`` in all (corpus order kept)."""
    gold = {d for rel in data.qrels.values() for d, grade in rel.items() if grade > 0 and d in data.corpus}
    if n_docs < len(gold):
        raise ValueError(f"n_docs={n_docs} is fewer than the {len(gold)} relevant documents it must keep")
    others = [d for d in data.corpus if d not in gold]
    n_extra = min(n_docs - len(gold), len(others))
    picked = set(np.random.default_rng(seed).choice(len(others), size=n_extra, replace=False).tolist()) if n_extra else set()
    keep = gold | {others[i] for i in picked}
    corpus = {d: data.corpus[d] for d in data.corpus if d in keep}
    return RetrievalData(f"{data.name} ({len(corpus):,} documents)", corpus, data.queries, data.qrels)


def dense_evaluation(encode: Callable[[Sequence[str]], np.ndarray], data: RetrievalData,
                     metrics: Sequence[str] = ("ndcg@10", "recall@100")) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Encode ``data``'s documents and judged queries, rank by cosine, and score the run.

    Returns pytrec_eval's mean and per-query metrics (x 100), as :func:`embrepro.retrieval.evaluate_run`.
    """
    from embrepro.retrieval import dense_scores, evaluate_run, top_k

    doc_ids = list(data.corpus)
    query_ids = [q for q in data.queries if q in data.qrels]
    docs = np.asarray(encode(data.doc_texts()), dtype=np.float64)
    queries = np.asarray(encode([data.queries[q] for q in query_ids]), dtype=np.float64)
    for name, x, n in (("documents", docs, len(doc_ids)), ("queries", queries, len(query_ids))):
        if x.ndim != 2 or len(x) != n:
            raise ValueError(f"encode returned shape {x.shape} for {n} {name}")
    depth = max(int(m.partition("@")[2] or 10) for m in metrics)
    run = top_k(dense_scores(queries, docs), doc_ids, query_ids, depth)
    return evaluate_run({q: data.qrels[q] for q in query_ids}, run, metrics)


def load_scifact_train() -> RetrievalData:
    """SciFact's training claims as queries over the same 5,183 abstracts: 809 claims, 919 qrels.

    A claim's relevant abstracts are the ones it cites (``cited_doc_ids``), as in BEIR's SciFact
    train split (809 queries, 919 qrels). The claims are disjoint from the 300 test queries (BEIR's
    test queries are SciFact's validation claims), so a chapter may fine-tune on these pairs and
    evaluate on :func:`load_scifact`.
    """
    import re

    test = load_scifact()
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    with open(fetch("beir/scifact", "raw_csv/claims_train.csv"), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cited = re.findall(r"\d+", row["cited_doc_ids"])
            if not cited:
                continue
            queries[row["id"]] = row["claim"]
            for doc in cited:
                if doc not in test.corpus:
                    raise ValueError(f"SciFact train claim {row['id']} cites {doc}, which is not in the corpus")
                qrels.setdefault(row["id"], {})[doc] = 1
    overlap = set(queries) & set(test.queries)
    if overlap:
        raise ValueError(f"SciFact train claims overlap the test queries: {sorted(overlap)[:5]}")
    return RetrievalData("SciFact-train", test.corpus, queries, qrels)
