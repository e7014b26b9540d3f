"""Multi-vector (late-interaction) retrieval: token embeddings, Chamfer similarity, MUVERA's FDEs.

* :class:`Ragged` holds one variable-length set of vectors per text (a query's or a document's
  token embeddings) as one concatenated matrix plus offsets.
* :class:`TokenEmbeddingCache` keeps such sets on disk (one ``.npz`` per list of texts, keyed by
  model, revision and the texts), like :class:`embrepro.retrieval.EmbeddingCache` does for
  single vectors; :func:`minilm_token_cache` builds one for MiniLM's L2-normalised token vectors.
* :func:`chamfer_scores` is exact multi-vector similarity (ColBERT's MaxSim): for every query
  token, the largest dot product with any document token, summed over the query's tokens.
* :func:`token_search` computes exact Chamfer and, in the same pass, the paper's single-vector
  baseline: each query token's nearest document tokens, their documents unioned per query
  (:class:`TokenSearch` says at which depth k' each document joins the union).
* :func:`fde_encode` is MUVERA's fixed-dimensional encoding (Dhulipala et al. 2024): SimHash
  partitions of the token space, repeated ``reps`` times, a random projection per partition (the
  paper's dense +-1/sqrt(d) matrix, or the official code's sparse AMS sketch), the SUM of a query's
  tokens and the AVERAGE of a document's tokens per partition, empty document partitions filled
  with the token whose SimHash code is nearest in Hamming distance, and an optional final
  Count-Sketch projection. Queries and documents must use the same seed. :func:`fde_encode_many`
  builds several configurations that share a seed in one pass.
* :func:`pq_roundtrip` compresses FDEs with faiss's product quantizer (PQ-256-8 in the paper).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embrepro import derived
from embrepro.paths import cache_dir
from embrepro.retrieval import EmbeddingCache


@dataclass
class Ragged:
    """``n`` sets of vectors: set ``i`` is ``vectors[offsets[i]:offsets[i + 1]]``."""

    vectors: np.ndarray  # (total vectors, dim), float32
    offsets: np.ndarray  # (n + 1,), int64, offsets[0] == 0

    def __post_init__(self):
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.vectors) or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0, never decrease and end at the number of vectors")

    @classmethod
    def from_list(cls, sets: Sequence[np.ndarray]) -> "Ragged":
        lengths = [len(s) for s in sets]
        vectors = np.concatenate([np.asarray(s, dtype=np.float32) for s in sets]) if sets else np.zeros((0, 0), np.float32)
        return cls(np.ascontiguousarray(vectors, dtype=np.float32), np.concatenate([[0], np.cumsum(lengths)]))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.vectors[self.offsets[i]:self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def owner(self) -> np.ndarray:
        """For every vector, the index of the set it belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def take(self, index: Sequence[int]) -> "Ragged":
        return Ragged.from_list([self[int(i)] for i in index])


def normalise_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


# --------------------------------------------------------------------------------------------
# The token-embedding cache
# --------------------------------------------------------------------------------------------

class TokenEmbeddingCache(EmbeddingCache):
    """Token embeddings on disk under ``.cache/embeddings`` (``<key>.npz``: float16 vectors, offsets).

    ``encode`` maps a list of texts to a list of (tokens x dim) arrays, or to a pair (that list,
    sentence vectors of the same forward pass); with ``sentence_cache`` set, such sentence vectors
    are stored there (:meth:`EmbeddingCache.put`, under the same texts and kind) on a miss. The key
    hashes model, revision, precision, batching, ``kind`` and the texts, so a different list of
    texts is a different entry.
    """

    def __init__(self, *args, sentence_cache: EmbeddingCache | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.sentence_cache = sentence_cache

    def key(self, texts: Sequence[str], kind: str) -> str:
        return super().key(texts, f"tokens:{kind}")

    def path(self, texts: Sequence[str], kind: str):
        return cache_dir("embeddings") / f"{self.key(texts, kind)}.tokens.npz"

    def get(self, texts: Sequence[str], kind: str = "text") -> Ragged:
        """Token vectors of ``texts``, from disk if this exact list was encoded before and the file
        is intact; a damaged file (a truncated ``.npz``) is encoded again, with one log line."""
        path = self.path(texts, kind)
        encoded: list[Ragged] = []
        sentences: list[np.ndarray] = []

        def build(tmp) -> dict:
            sets = self.encode(list(texts))
            if isinstance(sets, tuple):
                sets, sv = sets
                sentences.append(sv)
            if len(sets) != len(texts):
                raise ValueError(f"encode returned {len(sets)} sets for {len(texts)} texts")
            ragged = Ragged.from_list(sets)
            np.savez(tmp, vectors=ragged.vectors.astype(np.float16), offsets=ragged.offsets)
            # what the caller gets is exactly what a later cache hit returns
            encoded.append(Ragged(ragged.vectors.astype(np.float16).astype(np.float32), ragged.offsets))
            return {"model": self.model_id, "revision": self.revision, "precision": self.precision,
                    "kind": f"tokens:{kind}"}

        derived.ensure(path, self.key(texts, kind), build)
        if sentences and self.sentence_cache is not None:
            self.sentence_cache.put(list(texts), sentences[0], kind)
        if encoded:
            self.misses += 1
            return encoded[0]
        self.hits += 1
        with np.load(path) as f:
            return Ragged(f["vectors"].astype(np.float32), f["offsets"])


def minilm_token_cache(encoder, batch_size: int | None = None, precision: str | None = None,
                       sentence_cache: EmbeddingCache | None | bool = True) -> TokenEmbeddingCache:
    """MiniLM's contextual token vectors (padding dropped, [CLS] and [SEP] kept), L2-normalised,
    computed at ``precision`` (default: the machine's, :func:`embrepro.precision.default_precision`).

    Texts are batched by length in word pieces, as :func:`embrepro.retrieval.minilm_cache` batches
    them (:func:`embrepro.models.encode_by_length`; ``batch_size`` caps the texts per batch), and
    the same forward pass gives the sentence vectors: on a miss they are stored in
    ``sentence_cache`` (default ``True``: ``minilm_cache(encoder, batch_size, precision)``;
    ``False``: not stored) under the same texts and ``kind``, so a chapter that wants both encodes
    the texts once. They are the vectors that cache computes itself, batch for batch, so which
    chapter fills it does not matter."""
    from embrepro.models import BATCH_TEXTS, BATCH_TOKENS, MINILM, MINILM_SHA256, batching_label, encode_by_length
    from embrepro.precision import autocast, default_precision
    from embrepro.retrieval import minilm_cache

    precision = default_precision() if precision is None else precision
    device = getattr(getattr(encoder, "device", None), "type", "cpu")
    max_texts = BATCH_TEXTS if batch_size is None else int(batch_size)
    batching = batching_label(BATCH_TOKENS, max_texts)
    if sentence_cache is True:
        sentence_cache = minilm_cache(encoder, batch_size=max_texts, precision=precision)
    elif sentence_cache is False:
        sentence_cache = None
    if sentence_cache is not None and (sentence_cache.model_id, sentence_cache.revision, sentence_cache.precision,
                                       sentence_cache.batching) != (MINILM, MINILM_SHA256, precision, batching):
        raise ValueError("sentence_cache must be a MiniLM cache with this precision and batching")

    def encode(texts: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
        with autocast(precision, device):
            sentences, sets = encode_by_length(encoder, texts, tokens=True, max_tokens=BATCH_TOKENS,
                                               max_texts=max_texts)
        return [normalise_rows(t) for t in sets], sentences

    return TokenEmbeddingCache(MINILM, MINILM_SHA256, encode, precision, batching=batching,
                               sentence_cache=sentence_cache)


# --------------------------------------------------------------------------------------------
# Exact Chamfer / MaxSim
# --------------------------------------------------------------------------------------------

def chamfer_scores(queries: Ragged, docs: Ragged, chunk_vectors: int = 32768) -> np.ndarray:
    """Exact Chamfer similarity of every query with every document, (queries x documents).

    score(Q, D) = sum over q in Q of max over d in D of <q, d>. Documents are processed in chunks
    of about ``chunk_vectors`` token vectors to bound memory. Every set must be non-empty.
    """
    if np.any(queries.lengths == 0) or np.any(docs.lengths == 0):
        raise ValueError("every query and document needs at least one vector")
    out = np.empty((len(queries), len(docs)), dtype=np.float32)
    q_starts = queries.offsets[:-1]
    for start, stop, lo, sims in _chunks(queries, docs, chunk_vectors):
        best = np.maximum.reduceat(sims, docs.offsets[start:stop] - lo, axis=1)  # (query tokens, chunk docs)
        out[:, start:stop] = np.add.reduceat(best, q_starts, axis=0)
    return out


def _chunks(queries: Ragged, docs: Ragged, chunk_vectors: int):
    """Documents in chunks of about ``chunk_vectors`` token vectors (at least one document each):
    yields ``(first doc, end doc, first token row, query tokens x chunk tokens similarities)``."""
    start = 0
    while start < len(docs):
        stop = int(np.searchsorted(docs.offsets, docs.offsets[start] + chunk_vectors, side="right")) - 1
        stop = min(max(stop, start + 1), len(docs))
        lo, hi = docs.offsets[start], docs.offsets[stop]
        yield start, stop, lo, queries.vectors @ docs.vectors[lo:hi].T
        start = stop


def chamfer_one(query: np.ndarray, docs: Ragged, candidates: Sequence[int]) -> np.ndarray:
    """Chamfer similarity of one query (tokens x dim) with the listed documents only (re-ranking)."""
    cand = docs.take(candidates)
    sims = query @ cand.vectors.T
    return np.maximum.reduceat(sims, cand.offsets[:-1], axis=1).sum(axis=0)


# --------------------------------------------------------------------------------------------
# The paper's single-vector baseline: token-level nearest neighbours, unioned per query
# --------------------------------------------------------------------------------------------

@dataclass
class TokenSearch:
    """What one pass over every (query token, document token) pair yields (:func:`token_search`).

    ``chamfer``: exact Chamfer scores (queries x documents). ``first_rank``: for each query and
    document, the smallest k' at which the document enters the paper's single-vector candidate set,
    the union over the query's tokens of the documents owning each token's k' nearest document
    tokens (``k_tokens + 1``: not within ``k_tokens``). ``best``: the largest similarity of any
    query token with any of the document's tokens. ``query_tokens``: tokens per query.
    """

    chamfer: np.ndarray
    first_rank: np.ndarray
    best: np.ndarray
    k_tokens: int
    query_tokens: np.ndarray

    def union_size(self, k: int) -> np.ndarray:
        """Per query, how many distinct documents the union of every token's k nearest tokens holds."""
        return (self.first_rank <= k).sum(axis=1)

    def scores(self) -> np.ndarray:
        """Scores that order each query's documents as the union grows: by ``first_rank`` (the k'
        at which a document joins), documents joining at the same k' by ``best`` (higher first).
        The top N of this order are the first N documents the heuristic retrieves."""
        lo, hi = float(self.best.min()), float(self.best.max())
        tie = 0.5 * (self.best.astype(np.float64) - lo) / max(hi - lo, 1e-12)  # in [0, 0.5]
        return -self.first_rank.astype(np.float64) + tie


def _top_merge(top: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The ``top.shape[1]`` largest values per row among ``top`` and ``new`` (unsorted)."""
    both = np.concatenate([top, new], axis=1)
    k = top.shape[1]
    return np.partition(both, both.shape[1] - k, axis=1)[:, -k:]


def token_search(queries: Ragged, docs: Ragged, k_tokens: int, chunk_vectors: int = 32768) -> TokenSearch:
    """Exact Chamfer and the paper's token-union heuristic from one pass over the document tokens.

    For each query token the pass keeps its ``k_tokens`` most similar document tokens (exact
    search, the most favourable case for the heuristic) and its best similarity in every document.
    A document's best token for query token q has rank 1 + (document tokens more similar to q), so
    the document enters q's list of k' nearest tokens at k' = that rank; it enters the query's
    union at the smallest such k' over the query's tokens (``TokenSearch.first_rank``).
    """
    if np.any(queries.lengths == 0) or np.any(docs.lengths == 0):
        raise ValueError("every query and document needs at least one vector")
    if k_tokens < 1:
        raise ValueError(f"k_tokens must be >= 1, got {k_tokens}")
    n_rows = len(queries.vectors)
    best = np.empty((n_rows, len(docs)), dtype=np.float32)
    top = np.full((n_rows, k_tokens), -np.inf, dtype=np.float32)
    tau = np.full(n_rows, -np.inf, dtype=np.float32)  # each row's k-th largest similarity so far
    for start, stop, lo, sims in _chunks(queries, docs, chunk_vectors):
        best[:, start:stop] = np.maximum.reduceat(sims, docs.offsets[start:stop] - lo, axis=1)
        if np.isneginf(tau).any():  # the first chunk(s): every value is a candidate
            top = _top_merge(top, sims)
        else:  # later chunks: only values above the row's running k-th largest can enter
            rows, cols = np.nonzero(sims > tau[:, None])
            if len(rows):
                counts = np.bincount(rows, minlength=n_rows)
                pos = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
                new = np.full((n_rows, int(counts.max())), -np.inf, dtype=np.float32)
                new[rows, pos] = sims[rows, cols]
                top = _top_merge(top, new)
        tau = top.min(axis=1)
    top.sort(axis=1)  # ascending
    rank = np.empty(best.shape, dtype=np.int32)
    for r in range(n_rows):  # tokens strictly more similar than the document's best, + 1
        greater = k_tokens - np.searchsorted(top[r], best[r], side="right")
        rank[r] = np.where(best[r] >= top[r, 0], greater + 1, k_tokens + 1)
    q_starts = queries.offsets[:-1]
    return TokenSearch(chamfer=np.add.reduceat(best, q_starts, axis=0),
                       first_rank=np.minimum.reduceat(rank, q_starts, axis=0),
                       best=np.maximum.reduceat(best, q_starts, axis=0),
                       k_tokens=k_tokens, query_tokens=queries.lengths.copy())


# --------------------------------------------------------------------------------------------
# Fixed-dimensional encodings
# --------------------------------------------------------------------------------------------

PROJECTIONS = ("dense", "ams")


@dataclass(frozen=True)
class FDEConfig:
    """MUVERA's knobs: ``reps`` repetitions of ``k_sim`` SimHash hyperplanes (2**k_sim partitions),
    each partition's sum/average projected to ``d_proj`` dimensions (None: no projection), and an
    optional final Count-Sketch to ``final_dim``. ``seed`` must be the same for queries and documents.

    ``projection``: ``"dense"`` is the paper's formula, a dense matrix of random +-1/sqrt(d_proj)
    entries; ``"ams"`` is what the official code does (``AMSProjectionMatrixFromSeed``), a sparse
    sketch sending each input coordinate, with a random sign and no scaling, to one random output
    coordinate. Both keep inner products in expectation; the scale does not change any ranking.
    """

    reps: int = 20
    k_sim: int = 5
    d_proj: int | None = 16
    seed: int = 0
    final_dim: int | None = None
    projection: str = "dense"

    def __post_init__(self):
        if self.projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, not {self.projection!r}")
        if self.reps < 1 or self.k_sim < 0 or (self.d_proj is not None and self.d_proj < 1):
            raise ValueError(f"need reps >= 1, k_sim >= 0 and d_proj >= 1 (or None), got {self}")

    def dim(self, input_dim: int) -> int:
        full = self.reps * 2 ** self.k_sim * (self.d_proj or input_dim)
        return self.final_dim or full

    @property
    def label(self) -> str:
        return (f"R={self.reps}, k={self.k_sim}, d={self.d_proj}" + (f", final={self.final_dim}" if self.final_dim else "")
                + (", AMS sketch" if self.projection == "ams" else ""))


@functools.lru_cache(maxsize=512)
def _planes(input_dim: int, seed: int, rep: int, k_sim: int) -> np.ndarray:
    """Repetition ``rep``'s SimHash hyperplanes (input_dim x k_sim). Drawn row by row from a
    stream of the seed and ``rep`` alone, so the first k of them are the same for every k_sim
    >= k: encodings that differ only in k_sim share their hyperplanes (as in the official code)."""
    rng = np.random.default_rng([seed, rep, 0])
    return np.ascontiguousarray(rng.standard_normal((k_sim, input_dim)).astype(np.float32).T)


@functools.lru_cache(maxsize=512)
def _projection(input_dim: int, seed: int, rep: int, d_proj: int, projection: str) -> np.ndarray:
    """Repetition ``rep``'s random projection to ``d_proj`` dimensions (see :class:`FDEConfig`)."""
    rng = np.random.default_rng([seed, rep, 1])
    if projection == "dense":
        return (rng.choice([-1.0, 1.0], size=(input_dim, d_proj)) / np.sqrt(d_proj)).astype(np.float32)
    out = np.zeros((input_dim, d_proj), dtype=np.float32)
    out[np.arange(input_dim), rng.integers(0, d_proj, size=input_dim)] = rng.choice([-1.0, 1.0], size=input_dim)
    return out


def _repetition(input_dim: int, cfg: FDEConfig, rep: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Repetition ``rep``'s SimHash hyperplanes and projection (None without one); the same for
    queries and documents (drawn from the seed and ``rep`` alone, and memoised)."""
    proj = None if cfg.d_proj is None else _projection(input_dim, cfg.seed, rep, cfg.d_proj, cfg.projection)
    return _planes(input_dim, cfg.seed, rep, cfg.k_sim), proj


def simhash_codes(x: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Each row's partition: bit j is set when the row lies on the positive side of hyperplane j."""
    bits = (x @ planes) > 0
    return (bits.astype(np.int64) << np.arange(planes.shape[1])).sum(axis=1)


def fde_encode(sets: Ragged, cfg: FDEConfig, kind: str, fill_empty: bool = True) -> np.ndarray:
    """Fixed-dimensional encodings of query or document token sets, (sets x cfg.dim(input_dim)).

    ``kind="query"`` sums a set's projected vectors per partition; ``kind="doc"`` averages them and,
    with ``fill_empty``, gives an empty partition the projected vector of the set's token whose
    SimHash code is nearest (fewest differing bits) to the partition's code, the first such token
    on ties. The inner product of a query FDE with a document FDE approximates their Chamfer
    similarity times ``reps`` (before any final projection). See :func:`fde_encode_many`.
    """
    return fde_encode_many(sets, [cfg], kind, fill_empty=fill_empty)[0]


def fde_encode_many(sets: Ragged, configs: Sequence[FDEConfig], kind: str, fill_empty: bool = True) -> list[np.ndarray]:
    """:func:`fde_encode` for several configurations that share ``reps``, ``seed`` and
    ``projection`` (they may differ in ``k_sim``, ``d_proj`` and ``final_dim``), sharing the work.

    Per repetition the tokens' SimHash bits are computed once for the largest k_sim, and the tokens
    are projected once for every d_proj in use (projecting each token and then summing or
    averaging is the same as projecting the sum or average: the projection is linear). Partitions
    are aggregated at the largest k_sim; a coarser k_sim's partition is the union of two finer ones
    (its code drops the highest bit), so its sums and counts are added, not recomputed.
    """
    from scipy import sparse

    if kind not in ("query", "doc"):
        raise ValueError(f"kind must be 'query' or 'doc', not {kind!r}")
    configs = list(configs)
    if not configs:
        raise ValueError("give at least one configuration")
    head = configs[0]
    if any((c.reps, c.seed, c.projection) != (head.reps, head.seed, head.projection) for c in configs):
        raise ValueError("configurations encoded together must share reps, seed and projection")
    n, (total, input_dim) = len(sets), sets.vectors.shape
    if np.any(sets.lengths == 0):
        raise ValueError("every set needs at least one vector")
    k_max, k_min = max(c.k_sim for c in configs), min(c.k_sim for c in configs)
    d_list = list(dict.fromkeys(c.d_proj for c in configs))
    widths = [d or input_dim for d in d_list]
    col0 = dict(zip(d_list, np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()))
    owner = sets.owner
    powers = 1 << np.arange(k_max)
    blocks: dict[int, list[np.ndarray]] = {i: [] for i in range(len(configs))}
    for rep in range(head.reps):
        # one pass over the tokens per repetition: SimHash sides and every projection in use
        mats = [_planes(input_dim, head.seed, rep, k_max)] + [
            _projection(input_dim, head.seed, rep, d, head.projection) for d in d_list if d is not None]
        prod = sets.vectors @ np.concatenate(mats, axis=1)
        codes = (prod[:, :k_max] > 0) @ powers if k_max else np.zeros(total, np.int64)
        parts = iter(np.split(prod[:, k_max:], np.cumsum([d for d in d_list if d is not None])[:-1], axis=1))
        y = np.concatenate([sets.vectors if d is None else next(parts) for d in d_list], axis=1)
        cell = owner * 2 ** k_max + codes
        assign = sparse.csr_matrix((np.ones(total, np.float32), (cell, np.arange(total))), shape=(n * 2 ** k_max, total))
        sums = {k_max: np.asarray(assign @ y, dtype=np.float32).reshape(n, 2 ** k_max, -1)}
        counts = {k_max: np.bincount(cell, minlength=n * 2 ** k_max).reshape(n, 2 ** k_max)}
        first = {}  # each (set, partition)'s first token, for filling empty partitions
        if kind == "doc" and fill_empty:
            f = np.full(n * 2 ** k_max, total, dtype=np.int64)
            cells, at = np.unique(cell, return_index=True)  # tokens are in order: the first occurrence
            f[cells] = at
            first[k_max] = f.reshape(n, 2 ** k_max)
        for k in range(k_max - 1, k_min - 1, -1):  # coarser partitions: the code drops its highest bit
            half = 2 ** k
            sums[k] = sums[k + 1][:, :half] + sums[k + 1][:, half:]
            counts[k] = counts[k + 1][:, :half] + counts[k + 1][:, half:]
            if first:
                first[k] = np.minimum(first[k + 1][:, :half], first[k + 1][:, half:])
        filled: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for i, c in enumerate(configs):
            k, c0, width = c.k_sim, col0[c.d_proj], c.d_proj or input_dim
            block = sums[k][:, :, c0:c0 + width]
            if kind == "doc":
                block = block / np.maximum(counts[k], 1)[:, :, None]
                if fill_empty and k > 0 and (counts[k] == 0).any():
                    if k not in filled:
                        filled[k] = _nearest_tokens(first[k], total)
                    doc, part, token = filled[k]
                    block[doc, part] = y[token, c0:c0 + width]
            blocks[i].append(block.reshape(n, -1))
    out = []
    for i, c in enumerate(configs):
        fde = np.concatenate(blocks[i], axis=1)
        out.append(count_sketch(fde, c.final_dim, c.seed) if c.final_dim else fde)
    return out


def _nearest_tokens(first: np.ndarray, absent: int, max_block: int = 1 << 24):
    """Where to fill empty partitions. ``first[s, p]`` is set s's first token in partition p
    (``absent`` when p is empty). For every empty (s, p): the token of s whose code differs from p
    in the fewest bits, the earliest token on ties. Codes present in s have the same distance for
    all their tokens, so it suffices to compare p with the codes present, each by its first token.
    Returns (set, partition, token) index arrays."""
    n_sets, n_parts = first.shape
    empty = first == absent
    dist = np.bitwise_count(np.arange(n_parts)[:, None] ^ np.arange(n_parts)[None, :]).astype(np.int64)
    sets_out, parts_out, tokens_out = [], [], []
    need = np.flatnonzero(empty.any(axis=1))
    step = max(1, max_block // (n_parts * n_parts))
    for lo in range(0, len(need), step):
        idx = need[lo:lo + step]
        f = first[idx]  # (sets, codes)
        key = np.where(f[:, None, :] < absent, dist[None] * (absent + 1) + f[:, None, :], np.iinfo(np.int64).max)
        best_code = key.argmin(axis=2)  # (sets, partitions)
        rows, parts = np.nonzero(empty[idx])
        sets_out.append(idx[rows])
        parts_out.append(parts)
        tokens_out.append(f[rows, best_code[rows, parts]])
    if not sets_out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(sets_out), np.concatenate(parts_out), np.concatenate(tokens_out)


def count_sketch(x: np.ndarray, out_dim: int, seed: int) -> np.ndarray:
    """Count-Sketch of the rows: coordinate i goes, with a random sign, to a random one of ``out_dim``."""
    from scipy import sparse

    rng = np.random.default_rng([seed, 1_000_003])
    target = rng.integers(0, out_dim, size=x.shape[1])
    sign = rng.choice([-1.0, 1.0], size=x.shape[1]).astype(np.float32)
    m = sparse.csr_matrix((sign, (np.arange(x.shape[1]), target)), shape=(x.shape[1], out_dim))
    return np.asarray((m.T @ x.T).T, dtype=np.float32)


def pq_roundtrip(x: np.ndarray, group: int = 8, nbits: int = 8, seed: int = 0,
                 train: np.ndarray | None = None, niter: int = 25) -> tuple[np.ndarray, int]:
    """Product quantization of the rows of ``x`` (faiss): split each row into groups of ``group``
    coordinates, replace each group by the nearest of 2**nbits centroids learnt by k-means on
    ``train`` (default: ``x`` itself, as an index is built from the vectors it stores).

    Returns the decoded rows (what asymmetric search scores a float query against: the inner
    product with a decoded row is the PQ score) and the bytes per row. The paper's PQ-256-8 is
    ``group=8, nbits=8``: 8 float32 (32 bytes) become one byte, 32 times smaller. ``niter``:
    k-means iterations per codebook (faiss's default, 25).
    """
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1] % group:
        raise ValueError(f"the dimension {x.shape[1]} is not a multiple of the group size {group}")
    pq = faiss.ProductQuantizer(x.shape[1], x.shape[1] // group, nbits)
    pq.cp.seed = seed
    pq.cp.niter = niter
    pq.cp.min_points_per_centroid = 1  # no warning per sub-quantizer when training on a few thousand rows
    # one thread: the per-group k-means are tiny, and OpenMP barriers in each of their thousands of
    # iterations stall when the cores are shared (measured: most of the time spent waiting)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        pq.train(np.ascontiguousarray(x if train is None else train, dtype=np.float32))
        codes = pq.compute_codes(x)
        return pq.decode(codes), int(codes.shape[1])
    finally:
        faiss.omp_set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Candidate recall
# --------------------------------------------------------------------------------------------

def spearman_by_row(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per row (query), Spearman's rank correlation of ``scores`` with ``reference`` over the
    columns (documents); ties get average ranks, as in ``scipy.stats.spearmanr``."""
    from scipy.stats import rankdata

    a, b = rankdata(scores, axis=1), rankdata(reference, axis=1)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def ranks_of(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each query (row), the 0-based rank of each target column under ``scores`` (ties: stable)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    rows = np.arange(scores.shape[0])[:, None]
    rank[rows, order] = np.arange(scores.shape[1])[None, :]
    return rank[rows, targets]


def recall_curve(scores: np.ndarray, truth: np.ndarray, depths: Sequence[int]) -> np.ndarray:
    """Mean share of each query's ``truth`` columns (e.g. the exact top-10) in the top-N, per N in ``depths``."""
    r = ranks_of(scores, truth)
    return np.array([(r < n).mean() for n in depths])


def recall_by_depth(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per query, the share of its ``truth`` columns in the top-N for every N = 1 .. documents.

    Returns an array of shape (queries, documents): column ``N - 1`` is each query's recall at N.
    Rows can be resampled (a bootstrap over queries) and handed to :func:`depth_for_recall`.
    """
    r = ranks_of(scores, truth)  # (queries, |truth|), 0-based
    hits = np.zeros(scores.shape, dtype=np.float64)
    np.add.at(hits, (np.repeat(np.arange(len(r)), r.shape[1]), r.ravel()), 1.0)
    return np.cumsum(hits, axis=1) / r.shape[1]


def depth_for_recall(curves: np.ndarray, target: float, weights: np.ndarray | None = None) -> int:
    """The smallest N at which the mean over rows of ``curves`` (from :func:`recall_by_depth`)
    reaches ``target`` (a share, 0 to 1); the number of documents if it never does.

    ``weights`` (optional, one per row, e.g. how often a bootstrap resample drew each query) makes
    it a weighted mean, the same as repeating each row that many times.
    """
    if not 0 < target <= 1:
        raise ValueError(f"a recall target is a share in (0, 1], got {target}")
    curves = np.asarray(curves)
    if weights is None:
        mean = curves.mean(axis=0)
    else:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(curves),) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError("weights need one non-negative value per row and a positive sum")
        mean = weights @ curves / weights.sum()
    hit = np.flatnonzero(mean >= target - 1e-12)
    return int(hit[0] + 1) if len(hit) else mean.shape[0]


def candidates_needed(scores: np.ndarray, truth: np.ndarray, target: float) -> int:
    """The smallest N whose mean recall of ``truth`` in the top-N reaches ``target`` (a share, 0 to 1)."""
    return depth_for_recall(recall_by_depth(scores, truth), target)
