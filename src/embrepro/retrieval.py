"""Retrieval: BM25, dense search, IR metrics, hybrids and an embedding cache.

* Data in the BEIR layout (``corpus``: id -> title and text, ``queries``: id -> text, ``qrels``:
  query id -> {doc id: relevance}): :class:`RetrievalData` and the SciFact and LIMIT-small
  loaders live in :mod:`embrepro.data.benchmarks` and are re-exported here for chapters.
* Metrics come from ``pytrec_eval`` (the TREC evaluation tool's Python binding): nDCG@k,
  recall@k and MRR, per query and averaged over the queries that have relevance judgements.
* BM25 comes from ``bm25s``.
* Hybrids of two runs: re-ranking one run's candidates with another's scores, score fusion
  (min-max or z-score normalisation, weighted sum) and reciprocal-rank fusion; a paired bootstrap
  over queries to compare two systems.
* :class:`EmbeddingCache` stores encoded texts on disk, keyed by model, model revision and a hash
  of the texts, so that SciFact's 5,183 abstracts are encoded once for every chapter that needs
  them. Each ``.npy`` is a derived file (:mod:`embrepro.derived`): written atomically with a
  record of its sha256, checked on every read, and encoded again if it is damaged.

Runs (rankings) are dicts ``{query_id: {doc_id: score}}``, as pytrec_eval and BEIR use them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from embrepro import derived
from embrepro.data.benchmarks import RetrievalData, load_limit_small, load_scifact  # noqa: F401 (for chapters)
from embrepro.paths import cache_dir, threads

Run = dict[str, dict[str, float]]


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
    """A bm25s index over a collection, searched with the same tokeniser (and stemmer) it was built with.

    Scoring is Lucene's BM25 (``method="lucene"``, the variant Anserini uses, written out in
    ``tests/test_retrieval_bm25.py`` with a hand-computed case): for a query term ``t`` in document ``d``,
    ``idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))`` with ``idf(t) = ln(1 + (N - df + 0.5) /
    (df + 0.5))``. Like Lucene since version 8 it leaves out the classic ``(k1 + 1)`` factor of the
    numerator, which multiplies every score by the same constant and changes no ranking. Unlike
    Lucene, document lengths are exact (Lucene stores them in one lossy byte). Tokens: lower-cased,
    runs of two or more word characters, Lucene's 33 English stop words removed, then the optional
    Snowball stemmer (``"porter"``: the original Porter algorithm, as Lucene's PorterStemFilter).
    """

    def __init__(self, data: RetrievalData, k1: float = 0.9, b: float = 0.4, stemmer: str | None = None,
                 method: str = "lucene"):
        import bm25s

        self.doc_ids, self.stemmer = data.doc_ids, stemmer
        self.retriever = bm25s.BM25(k1=k1, b=b, method=method)  # named: bm25s's default could change
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
                                                  n_threads=threads())
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


def encoding_bills(candidates: Run, doc_ids: Sequence[str], doc_pieces: Sequence[int],
                   query_pieces: Sequence[int]) -> tuple[int, int, list[int]]:
    """What an encoder must read (in word pieces, say) for dense retrieval and for re-ranking.

    Dense retrieval encodes every document and every query; re-ranking encodes every query and
    each distinct document that appears in some query's ``candidates`` (an embedding computed once
    is reused). Returns ``(dense_bill, rerank_bill, candidate_columns)``, the last being the sorted
    positions of the candidate documents in ``doc_ids``.
    """
    column = {d: j for j, d in enumerate(doc_ids)}
    pieces = np.asarray(doc_pieces, dtype=np.int64)
    if len(pieces) != len(column):
        raise ValueError(f"{len(pieces)} piece counts for {len(column)} documents")
    chosen = sorted({column[d] for docs in candidates.values() for d in docs})
    queries = int(np.sum(np.asarray(query_pieces, dtype=np.int64)))
    return int(pieces.sum()) + queries, int(pieces[chosen].sum()) + queries, chosen


def wins_losses(a: Sequence[float], b: Sequence[float], tol: float = 1e-9) -> tuple[int, int, int]:
    """How many items ``a`` wins, loses and ties against ``b`` (per query, say)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    return int((diff > tol).sum()), int((diff < -tol).sum()), int((np.abs(diff) <= tol).sum())


# --------------------------------------------------------------------------------------------
# The embedding cache
# --------------------------------------------------------------------------------------------

class EmbeddingCache:
    """Encoded texts on disk under ``.cache/embeddings``, keyed by model, revision, precision and texts.

    ``revision`` must change whenever the model's weights do (for MiniLM, use the weights'
    sha256); ``precision`` names the arithmetic ``encode`` computes in (``"fp32"`` or ``"bf16"``,
    see :mod:`embrepro.precision`). ``hits`` and ``misses`` count what this object served from
    disk or encoded.
    """

    def __init__(self, model_id: str, revision: str, encode: Callable[[list[str]], np.ndarray],
                 precision: str = "fp32", batching: str | None = None):
        from embrepro.precision import PRECISIONS, PrecisionError

        if precision not in PRECISIONS:
            raise PrecisionError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.model_id, self.revision, self.encode, self.precision = model_id, revision, encode, precision
        self.batching = batching
        self.hits = self.misses = 0

    def key(self, texts: Sequence[str], kind: str) -> str:
        # ``batching`` (how texts are grouped into batches, which moves vectors by float rounding)
        # enters the key only when given, so the keys of other caches stay as they were
        head = f"{self.model_id}\n{self.revision}\n{self.precision}\n{kind}\n"
        if self.batching is not None:
            head += f"batching={self.batching}\n"
        digest = hashlib.sha256(head.encode())
        for text in texts:
            digest.update(text.encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def get(self, texts: Sequence[str], kind: str = "text") -> np.ndarray:
        """Embeddings of ``texts`` (one float32 row each), from disk if this exact list was encoded
        before and the file is intact; a damaged file is encoded again (one log line)."""
        key = self.key(texts, kind)
        path = cache_dir("embeddings") / f"{key}.npy"
        encoded: list[np.ndarray] = []

        def build(tmp) -> dict:
            emb = np.asarray(self.encode(list(texts)), dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != len(texts):
                raise ValueError(f"encode returned an array of shape {emb.shape} for {len(texts)} texts")
            np.save(tmp, emb)
            encoded.append(emb)
            return {"model": self.model_id, "revision": self.revision, "precision": self.precision, "kind": kind,
                    "shape": list(emb.shape)}

        derived.ensure(path, key, build)
        if encoded:
            self.misses += 1
            return encoded[0]
        self.hits += 1
        return np.load(path)

    def put(self, texts: Sequence[str], emb: np.ndarray, kind: str = "text") -> bool:
        """Store ``emb`` as the encoding of ``texts`` when no intact entry exists yet (True if
        stored). For vectors computed elsewhere exactly as ``encode`` would compute them, e.g. the
        sentence vectors of the forward pass that gave token vectors (:mod:`embrepro.multivector`)."""
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise ValueError(f"an array of shape {emb.shape} for {len(texts)} texts")
        key = self.key(texts, kind)
        path = cache_dir("embeddings") / f"{key}.npy"
        stored: list[bool] = []

        def build(tmp) -> dict:
            np.save(tmp, emb)
            stored.append(True)
            return {"model": self.model_id, "revision": self.revision, "precision": self.precision, "kind": kind,
                    "shape": list(emb.shape)}

        derived.ensure(path, key, build)
        return bool(stored)


def minilm_cache(encoder, batch_size: int | None = None, precision: str | None = None) -> EmbeddingCache:
    """An :class:`EmbeddingCache` for the book's MiniLM encoder (revision = its weights' sha256),
    encoding at ``precision`` (default: :func:`embrepro.precision.default_precision`, the machine's).

    Texts are encoded in batches of similar length in word pieces
    (:func:`embrepro.models.encode_by_length`: at most ``models.BATCH_TOKENS`` padded word pieces
    and at most ``batch_size`` texts a batch, default ``models.BATCH_TEXTS``); the batching is part
    of the cache key. :func:`embrepro.multivector.minilm_token_cache` batches the same way, so the
    sentence vectors of its forward pass are the ones this cache would compute."""
    from embrepro.models import BATCH_TEXTS, BATCH_TOKENS, MINILM, MINILM_SHA256, batching_label, encode_by_length
    from embrepro.precision import autocast, default_precision

    precision = default_precision() if precision is None else precision
    device = getattr(getattr(encoder, "device", None), "type", "cpu")
    max_texts = BATCH_TEXTS if batch_size is None else int(batch_size)

    def encode(texts: list[str]) -> np.ndarray:
        with autocast(precision, device):
            return encode_by_length(encoder, texts, max_tokens=BATCH_TOKENS, max_texts=max_texts)

    return EmbeddingCache(MINILM, MINILM_SHA256, encode, precision, batching=batching_label(BATCH_TOKENS, max_texts))


# --------------------------------------------------------------------------------------------
# Cold-encoding estimates (one helper for every chapter)
# --------------------------------------------------------------------------------------------

class EncodeRate:
    """How fast an encoder turned texts into vectors, measured on a sample (see :func:`encode_rate`)."""

    def __init__(self, texts_per_s: float, sample: int, seconds: float, threads: int):
        self.texts_per_s, self.sample, self.seconds, self.threads = texts_per_s, sample, seconds, threads

    def estimate(self, n_texts: int) -> float:
        """Seconds to encode ``n_texts`` texts like the sample, cold (no cache)."""
        return n_texts / self.texts_per_s

    def __repr__(self) -> str:
        return (f"EncodeRate({self.texts_per_s:.1f} texts/s from {self.sample} texts in {self.seconds:.2f} s, "
                f"{self.threads} torch threads)")


def encode_rate(encode: Callable[[list[str]], object], texts: Sequence[str], sample: int = 64,
                seed: int = 0, warmup: int = 8) -> EncodeRate:
    """Measure an encoder's cold speed on a random sample of ``texts``, the same way everywhere.

    ``encode`` is called once, untimed, on ``warmup`` texts (the first call pays one-off costs:
    thread pools, lazily built kernels), then timed on ``sample`` texts drawn at random with
    ``seed`` (so short and long texts are represented as in the whole list). The rate is texts per
    second with the torch thread count in force (recorded, since a one-thread measurement is about
    half a two-thread one). Chapters report ``rate.estimate(len(texts))`` as their cold time.
    """
    import time

    texts = list(texts)
    if not texts:
        raise ValueError("encode_rate needs at least one text")
    if sample < 1 or warmup < 0:
        raise ValueError(f"need sample >= 1 and warmup >= 0, got sample={sample}, warmup={warmup}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(texts), size=min(sample, len(texts)), replace=False)
    chosen = [texts[i] for i in pick]
    if warmup:
        encode(chosen[:warmup])
    start = time.perf_counter()
    encode(chosen)
    seconds = time.perf_counter() - start
    try:
        import torch
        n_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        n_threads = threads()
    return EncodeRate(len(chosen) / max(seconds, 1e-9), len(chosen), seconds, n_threads)
