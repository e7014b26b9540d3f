"""Retrieval: BEIR-layout data, BM25, dense search, IR metrics and an embedding cache.

* Data in the BEIR layout (``corpus``: id -> title and text, ``queries``: id -> text, ``qrels``:
  query id -> {doc id: relevance}), loaded through :mod:`embrepro.data` from SciFact (complete)
  and LIMIT-small (complete).
* Metrics come from ``pytrec_eval`` (the TREC evaluation tool's Python binding): nDCG@k,
  recall@k and MRR, per query and averaged over the queries that have relevance judgements.
* BM25 comes from ``bm25s``.
* :class:`EmbeddingCache` stores encoded texts on disk, keyed by model, model revision and a hash
  of the texts, so that SciFact's 5,183 abstracts are encoded once for every chapter that needs
  them.

Runs (rankings) are dicts ``{query_id: {doc_id: score}}``, as pytrec_eval and BEIR use them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embrepro.data import fetch
from embrepro.paths import cache_dir

Run = dict[str, dict[str, float]]


@dataclass
class RetrievalData:
    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def doc_texts(self, with_title: bool = True) -> list[str]:
        """Document texts in corpus order; the title is prepended as BEIR does ("title text")."""
        return [(f"{d['title']} {d['text']}" if with_title and d.get("title") else d["text"]).strip()
                for d in self.corpus.values()]

    def judged(self) -> "RetrievalData":
        """Only the queries that have at least one relevant document."""
        queries = {q: t for q, t in self.queries.items() if any(r > 0 for r in self.qrels.get(q, {}).values())}
        return RetrievalData(self.name, self.corpus, queries, {q: self.qrels[q] for q in queries})


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_scifact() -> RetrievalData:
    """SciFact (Wadden et al. 2020) in the BEIR layout: 5,183 abstracts, 300 test queries, 339 qrels."""
    corpus = {d["_id"]: {"title": d.get("title", ""), "text": d["text"]}
              for d in _read_jsonl(fetch("beir/scifact", "beir_format/corpus.jsonl"))}
    queries = {q["_id"]: q["text"] for q in _read_jsonl(fetch("beir/scifact", "beir_format/queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = {}
    with open(fetch("beir/scifact", "beir_format/qrels/test.tsv"), encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return RetrievalData("SciFact", corpus, queries, qrels)


def load_limit_small() -> RetrievalData:
    """LIMIT-small (Weller et al. 2025): 46 people and what they like, 1,000 'who likes X?' queries."""
    corpus = {d["_id"]: {"title": d.get("title", ""), "text": d["text"]}
              for d in _read_jsonl(fetch("limit", "limit-small/corpus.jsonl"))}
    queries = {q["_id"]: q["text"] for q in _read_jsonl(fetch("limit", "limit-small/queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = {}
    for row in _read_jsonl(fetch("limit", "limit-small/qrels.jsonl")):
        qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return RetrievalData("LIMIT-small", corpus, queries, qrels)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------

_MEASURES = {"ndcg": "ndcg_cut", "recall": "recall", "precision": "P", "map": "map_cut"}


def evaluate_run(qrels: dict[str, dict[str, int]], run: Run, metrics: Sequence[str] = ("ndcg@10", "recall@100"),
                 ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Mean and per-query metrics with pytrec_eval, x 100. Names: ``ndcg@k``, ``recall@k``,
    ``precision@k``, ``map@k``, ``mrr`` (reciprocal rank of the first relevant document).

    Queries of ``qrels`` missing from ``run`` count as 0, as in trec_eval with ``-c``.
    """
    import pytrec_eval

    wanted, names = set(), {}
    for metric in metrics:
        if metric == "mrr":
            wanted.add("recip_rank")
            names["recip_rank"] = "mrr"
            continue
        kind, _, k = metric.partition("@")
        if kind not in _MEASURES or not k.isdigit():
            raise ValueError(f"unknown metric {metric!r}; use ndcg@k, recall@k, precision@k, map@k or mrr")
        measure = f"{_MEASURES[kind]}.{k}"
        wanted.add(measure)
        names[f"{_MEASURES[kind]}_{k}"] = metric
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, wanted)
    judged = {q: {d: float(s) for d, s in run.get(q, {}).items()} for q in qrels}
    scores = evaluator.evaluate(judged)
    per_query = {q: {names[m]: 100 * v for m, v in s.items() if m in names} for q, s in scores.items()}
    for q in qrels:  # a query with an empty ranking scores 0 on everything
        per_query.setdefault(q, {name: 0.0 for name in names.values()})
    mean = {name: float(np.mean([pq[name] for pq in per_query.values()])) for name in names.values()}
    return mean, per_query


def top_k(scores: np.ndarray, doc_ids: Sequence[str], query_ids: Sequence[str], k: int) -> Run:
    """A run from a (queries x documents) score matrix: the ``k`` best documents per query."""
    k = min(k, scores.shape[1])
    best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return {q: {doc_ids[j]: float(scores[i, j]) for j in best[i]} for i, q in enumerate(query_ids)}


# --------------------------------------------------------------------------------------------
# BM25 and dense search
# --------------------------------------------------------------------------------------------

def bm25_run(data: RetrievalData, k: int = 100, k1: float = 0.9, b: float = 0.4) -> Run:
    """BM25 (bm25s, English stop words, no stemming) over title + text; ``k`` best per query.

    k1 = 0.9 and b = 0.4 are Anserini's defaults, which BEIR's BM25 baseline used.
    """
    import bm25s

    doc_ids = data.doc_ids
    retriever = bm25s.BM25(k1=k1, b=b)
    retriever.index(bm25s.tokenize(data.doc_texts(), stopwords="en", show_progress=False), show_progress=False)
    query_ids = list(data.queries)
    tokens = bm25s.tokenize([data.queries[q] for q in query_ids], stopwords="en", show_progress=False)
    results, scores = retriever.retrieve(tokens, k=min(k, len(doc_ids)), show_progress=False,
                                         n_threads=int(os.environ.get("EMBREPRO_THREADS", "1")))
    return {q: {doc_ids[int(j)]: float(s) for j, s in zip(results[i], scores[i]) if s > 0}
            for i, q in enumerate(query_ids)}


def dense_scores(query_emb: np.ndarray, doc_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query with every document (rows are normalised here)."""
    q = query_emb / np.linalg.norm(query_emb, axis=1, keepdims=True).clip(1e-12)
    d = doc_emb / np.linalg.norm(doc_emb, axis=1, keepdims=True).clip(1e-12)
    return q @ d.T


# --------------------------------------------------------------------------------------------
# The embedding cache
# --------------------------------------------------------------------------------------------

class EmbeddingCache:
    """Encoded texts on disk under ``.cache/embeddings``, keyed by model, revision and texts.

    ``revision`` must change whenever the model's weights do (for MiniLM, use the weights'
    sha256). ``hits`` and ``misses`` count what this object served from disk or encoded.
    """

    def __init__(self, model_id: str, revision: str, encode: Callable[[list[str]], np.ndarray]):
        self.model_id, self.revision, self.encode = model_id, revision, encode
        self.hits = self.misses = 0

    def key(self, texts: Sequence[str], kind: str) -> str:
        digest = hashlib.sha256(f"{self.model_id}\n{self.revision}\n{kind}\n".encode())
        for text in texts:
            digest.update(text.encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def get(self, texts: Sequence[str], kind: str = "text") -> np.ndarray:
        """Embeddings of ``texts`` (one row each), from disk if this exact list was encoded before."""
        path = cache_dir("embeddings") / f"{self.key(texts, kind)}.npy"
        if path.exists():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        emb = np.asarray(self.encode(list(texts)), dtype=np.float32)
        if emb.shape[0] != len(texts):
            raise ValueError(f"encode returned {emb.shape[0]} rows for {len(texts)} texts")
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npy")
        np.save(tmp, emb)
        os.replace(tmp, path)
        return emb


def minilm_cache(encoder, batch_size: int = 64) -> EmbeddingCache:
    """An :class:`EmbeddingCache` for the book's MiniLM encoder (revision = its weights' sha256)."""
    from embrepro.models import MINILM, MINILM_SHA256

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts, batch_size=batch_size, show_progress_bar=len(texts) > 500,
                              convert_to_numpy=True)

    return EmbeddingCache(MINILM, MINILM_SHA256, encode)
