"""Retrieval: BEIR-layout data, BM25, dense search, IR metrics and an embedding cache.

* Data in the BEIR layout (``corpus``: id -> title and text, ``queries``: id -> text, ``qrels``:
  query id -> {doc id: relevance}), loaded through :mod:`embrepro.data` from SciFact (complete)
  and LIMIT-small (complete).
* Metrics come from ``pytrec_eval`` (the TREC evaluation tool's Python binding): nDCG@k,
  recall@k and MRR, per query and averaged over the queries that have relevance judgements.
* BM25 comes from ``bm25s``.
* Hybrids of two runs: re-ranking one run's candidates with another's scores, score fusion
  (min-max or z-score normalisation, weighted sum) and reciprocal-rank fusion; a paired bootstrap
  over queries to compare two systems.
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

    def subset(self, n_docs: int) -> "RetrievalData":
        """The first ``n_docs`` documents, and the queries with a relevant document among them.

        The qrels keep only those documents, so metrics on the subset are computed as if the
        collection were just these documents (a quick, smaller test collection).
        """
        corpus = dict(list(self.corpus.items())[:n_docs])
        qrels = {q: kept for q, rel in self.qrels.items()
                 if (kept := {d: r for d, r in rel.items() if d in corpus}) and any(r > 0 for r in kept.values())}
        queries = {q: t for q, t in self.queries.items() if q in qrels}
        return RetrievalData(f"{self.name} (first {len(corpus):,} documents)", corpus, queries, qrels)

    def sample(self, n_docs: int, seed: int = 0, n_queries: int | None = None) -> "RetrievalData":
        """A smaller collection that keeps the judged queries answerable: every document relevant to
        a kept query, plus random other documents up to ``n_docs`` (corpus order is kept).

        Queries (judged ones, in order, at most ``n_queries``) are kept while their relevant
        documents still fit in ``n_docs``; the qrels are those of the kept queries.
        """
        judged = self.judged()
        keep_q, relevant = [], {}
        for q in judged.queries:
            if n_queries is not None and len(keep_q) >= n_queries:
                break
            new = {d: None for d, r in judged.qrels[q].items() if r > 0 and d in self.corpus}
            if len(relevant | new) > n_docs:
                break
            keep_q.append(q)
            relevant |= new
        rest = [d for d in self.corpus if d not in relevant]
        rng = np.random.default_rng(seed)
        extra = rng.choice(len(rest), size=min(n_docs - len(relevant), len(rest)), replace=False)
        chosen = set(relevant) | {rest[i] for i in extra}
        corpus = {d: v for d, v in self.corpus.items() if d in chosen}
        qrels = {q: {d: r for d, r in judged.qrels[q].items() if d in corpus} for q in keep_q}
        return RetrievalData(f"{self.name} (sample of {len(corpus):,} documents)", corpus,
                             {q: judged.queries[q] for q in keep_q}, qrels)


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

class BM25Index:
    """A bm25s index over a collection, searched with the same tokeniser (and stemmer) it was built with."""

    def __init__(self, data: RetrievalData, k1: float = 0.9, b: float = 0.4, stemmer: str | None = None):
        import bm25s

        self.doc_ids, self.stemmer = data.doc_ids, stemmer
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(self._tokenize(data.doc_texts()), show_progress=False)

    def _tokenize(self, texts: list[str]):
        import bm25s

        stem = None
        if self.stemmer:
            import snowballstemmer

            stem = snowballstemmer.stemmer(self.stemmer)  # has stemWords(), as bm25s expects
        return bm25s.tokenize(texts, stopwords="en", stemmer=stem, show_progress=False)

    def search(self, queries: dict[str, str], k: int = 100) -> Run:
        """The ``k`` best documents per query (documents that share no term with it are left out)."""
        query_ids = list(queries)
        results, scores = self.retriever.retrieve(self._tokenize([queries[q] for q in query_ids]),
                                                  k=min(k, len(self.doc_ids)), show_progress=False,
                                                  n_threads=int(os.environ.get("EMBREPRO_THREADS", "1")))
        return {q: {self.doc_ids[int(j)]: float(s) for j, s in zip(results[i], scores[i]) if s > 0}
                for i, q in enumerate(query_ids)}


def bm25_run(data: RetrievalData, k: int = 100, k1: float = 0.9, b: float = 0.4, stemmer: str | None = None) -> Run:
    """BM25 (bm25s, English stop words) over title + text; ``k`` best per query.

    k1 = 0.9 and b = 0.4 are Anserini's defaults, which BEIR's BM25 baseline used. ``stemmer`` names
    a Snowball algorithm (``"porter"`` is close to Anserini's Porter stemmer); None: no stemming.
    """
    return BM25Index(data, k1=k1, b=b, stemmer=stemmer).search(data.queries, k)


def dense_scores(query_emb: np.ndarray, doc_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of every query with every document (rows are normalised here)."""
    q = query_emb / np.linalg.norm(query_emb, axis=1, keepdims=True).clip(1e-12)
    d = doc_emb / np.linalg.norm(doc_emb, axis=1, keepdims=True).clip(1e-12)
    return q @ d.T


# --------------------------------------------------------------------------------------------
# Hybrids: re-ranking, score fusion, reciprocal-rank fusion; paired comparison over queries
# --------------------------------------------------------------------------------------------

def _ordered(docs: dict[str, float]) -> tuple[list[str], np.ndarray]:
    """Document ids and scores, best first (a stable sort: ties keep the run's order)."""
    ids = list(docs)
    scores = np.fromiter(docs.values(), dtype=float, count=len(ids))
    order = np.argsort(-scores, kind="stable")
    return [ids[j] for j in order], scores[order]


def truncate(run: Run, k: int) -> Run:
    """The ``k`` highest-scored documents of each query (ties keep the run's order)."""
    out: Run = {}
    for q, docs in run.items():
        ids, scores = _ordered(docs)
        out[q] = dict(zip(ids[:k], scores[:k].tolist()))
    return out


def rerank(candidates: Run, scores: np.ndarray, query_ids: Sequence[str], doc_ids: Sequence[str]) -> Run:
    """Re-score each query's candidate documents with a (queries x documents) score matrix.

    The candidate set is kept as it is: only the order changes (so recall at the candidate depth
    cannot change either).
    """
    row = {q: i for i, q in enumerate(query_ids)}
    col = {d: j for j, d in enumerate(doc_ids)}
    return {q: {d: float(scores[row[q], col[d]]) for d in docs} for q, docs in candidates.items()}


def _normalised(values: np.ndarray, method: str) -> np.ndarray:
    if method == "minmax":
        span = values.max() - values.min()
        return (values - values.min()) / span if span > 0 else np.ones_like(values)
    if method == "zscore":
        sd = values.std()
        return (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
    raise ValueError(f"unknown normalisation {method!r}; use 'minmax' or 'zscore'")


def normalise(run: Run, method: str = "minmax") -> Run:
    """Per-query score normalisation: ``minmax`` maps to [0, 1]; ``zscore`` to mean 0, sd 1."""
    _normalised(np.zeros(1), method)  # reject an unknown method even for an empty run
    return {q: dict(zip(docs, _normalised(np.fromiter(docs.values(), dtype=float), method).tolist())) if docs else {}
            for q, docs in run.items()}


def fuse_scores(runs: Sequence[Run], weights: Sequence[float], method: str = "minmax") -> Run:
    """Weighted sum of per-query normalised scores (a convex combination when weights sum to 1).

    A document that one run did not retrieve for a query gets that run's lowest normalised score
    for the query (0 after min-max): it is treated as ranked just below that run's list.
    """
    if len(runs) != len(weights):
        raise ValueError(f"{len(runs)} runs but {len(weights)} weights")
    _normalised(np.zeros(1), method)
    fused: Run = {}
    for q in dict.fromkeys(q for run in runs for q in run):  # union of queries, in a fixed order
        lists = [run.get(q, {}) for run in runs]
        docs = list(dict.fromkeys(d for lst in lists for d in lst))
        position = {d: i for i, d in enumerate(docs)}
        total = np.zeros(len(docs))
        for weight, lst in zip(weights, lists):
            if not lst:
                continue
            values = _normalised(np.fromiter(lst.values(), dtype=float, count=len(lst)), method)
            column = np.full(len(docs), values.min())
            column[[position[d] for d in lst]] = values
            total += weight * column
        fused[q] = dict(zip(docs, total.tolist()))
    return fused


def reciprocal_rank_fusion(runs: Sequence[Run], k: int = 60) -> Run:
    """RRF (Cormack, Clarke and Buettcher 2009): score(d) = sum over runs of 1 / (k + rank of d).

    Ranks start at 1; a run that did not retrieve ``d`` adds nothing. Only ranks matter, so
    the runs' scores need no normalisation.
    """
    fused: Run = {}
    for q in dict.fromkeys(q for run in runs for q in run):
        lists = [run[q] for run in runs if run.get(q)]
        docs = list(dict.fromkeys(d for lst in lists for d in lst))
        position = {d: i for i, d in enumerate(docs)}
        total = np.zeros(len(docs))
        for lst in lists:
            order = np.argsort(-np.fromiter(lst.values(), dtype=float, count=len(lst)), kind="stable")
            ranks = np.empty(len(lst))
            ranks[order] = np.arange(1, len(lst) + 1)
            total[[position[d] for d in lst]] += 1.0 / (k + ranks)
        fused[q] = dict(zip(docs, total.tolist()))
    return fused


def wins_losses(a: Sequence[float], b: Sequence[float], tol: float = 1e-9) -> tuple[int, int, int]:
    """How many items ``a`` wins, loses and ties against ``b`` (per query, say)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    return int((diff > tol).sum()), int((diff < -tol).sum()), int((np.abs(diff) <= tol).sum())


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
