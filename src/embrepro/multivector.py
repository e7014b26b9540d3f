"""Multi-vector (late-interaction) retrieval: token embeddings, Chamfer similarity, MUVERA's FDEs.

* :class:`Ragged` holds one variable-length set of vectors per text (a query's or a document's
  token embeddings) as one concatenated matrix plus offsets.
* :class:`TokenEmbeddingCache` keeps such sets on disk (one ``.npz`` per list of texts, keyed by
  model, revision and the texts), like :class:`embrepro.retrieval.EmbeddingCache` does for
  single vectors; :func:`minilm_token_cache` builds one for MiniLM's L2-normalised token vectors.
* :func:`chamfer_scores` is exact multi-vector similarity (ColBERT's MaxSim): for every query
  token, the largest dot product with any document token, summed over the query's tokens.
* :func:`fde_encode` is MUVERA's fixed-dimensional encoding (Dhulipala et al. 2024): SimHash
  partitions of the token space, repeated ``reps`` times, a random +-1 projection per partition,
  the SUM of a query's tokens and the AVERAGE of a document's tokens per partition, empty document
  partitions filled with the token whose SimHash code is nearest in Hamming distance, and an
  optional final Count-Sketch projection. Queries and documents must use the same seed.
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

    ``encode`` maps a list of texts to a list of (tokens x dim) arrays. The key hashes model,
    revision, ``kind`` and the texts, so a different list of texts is a different entry.
    """

    def key(self, texts: Sequence[str], kind: str) -> str:
        return super().key(texts, f"tokens:{kind}")

    def path(self, texts: Sequence[str], kind: str):
        return cache_dir("embeddings") / f"{self.key(texts, kind)}.tokens.npz"

    def get(self, texts: Sequence[str], kind: str = "text") -> Ragged:
        """Token vectors of ``texts``, from disk if this exact list was encoded before and the file
        is intact; a damaged file (a truncated ``.npz``) is encoded again, with one log line."""
        path = self.path(texts, kind)
        encoded: list[Ragged] = []

        def build(tmp) -> dict:
            sets = self.encode(list(texts))
            if len(sets) != len(texts):
                raise ValueError(f"encode returned {len(sets)} sets for {len(texts)} texts")
            ragged = Ragged.from_list(sets)
            np.savez(tmp, vectors=ragged.vectors.astype(np.float16), offsets=ragged.offsets)
            # what the caller gets is exactly what a later cache hit returns
            encoded.append(Ragged(ragged.vectors.astype(np.float16).astype(np.float32), ragged.offsets))
            return {"model": self.model_id, "revision": self.revision, "kind": f"tokens:{kind}"}

        derived.ensure(path, self.key(texts, kind), build)
        if encoded:
            self.misses += 1
            return encoded[0]
        self.hits += 1
        with np.load(path) as f:
            return Ragged(f["vectors"].astype(np.float32), f["offsets"])


def minilm_token_cache(encoder, batch_size: int = 32) -> TokenEmbeddingCache:
    """MiniLM's contextual token vectors (padding dropped, [CLS] and [SEP] kept), L2-normalised."""
    from embrepro.models import MINILM, MINILM_SHA256

    def encode(texts: list[str]) -> list[np.ndarray]:
        out = encoder.encode(texts, output_value="token_embeddings", batch_size=batch_size,
                             show_progress_bar=len(texts) > 500)
        return [normalise_rows(np.asarray(t.float().cpu().numpy() if hasattr(t, "cpu") else t, dtype=np.float32))
                for t in out]

    return TokenEmbeddingCache(MINILM, MINILM_SHA256, encode)


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
    start = 0
    while start < len(docs):
        stop = int(np.searchsorted(docs.offsets, docs.offsets[start] + chunk_vectors, side="right")) - 1
        stop = min(max(stop, start + 1), len(docs))
        lo, hi = docs.offsets[start], docs.offsets[stop]
        sims = queries.vectors @ docs.vectors[lo:hi].T  # (query tokens, chunk tokens)
        best = np.maximum.reduceat(sims, docs.offsets[start:stop] - lo, axis=1)  # (query tokens, chunk docs)
        out[:, start:stop] = np.add.reduceat(best, q_starts, axis=0)
        start = stop
    return out


def chamfer_one(query: np.ndarray, docs: Ragged, candidates: Sequence[int]) -> np.ndarray:
    """Chamfer similarity of one query (tokens x dim) with the listed documents only (re-ranking)."""
    cand = docs.take(candidates)
    sims = query @ cand.vectors.T
    return np.maximum.reduceat(sims, cand.offsets[:-1], axis=1).sum(axis=0)


# --------------------------------------------------------------------------------------------
# Fixed-dimensional encodings
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FDEConfig:
    """MUVERA's knobs: ``reps`` repetitions of ``k_sim`` SimHash hyperplanes (2**k_sim partitions),
    each partition's sum/average projected to ``d_proj`` dimensions (None: no projection), and an
    optional final Count-Sketch to ``final_dim``. ``seed`` must be the same for queries and documents."""

    reps: int = 20
    k_sim: int = 5
    d_proj: int | None = 16
    seed: int = 0
    final_dim: int | None = None

    def dim(self, input_dim: int) -> int:
        full = self.reps * 2 ** self.k_sim * (self.d_proj or input_dim)
        return self.final_dim or full

    @property
    def label(self) -> str:
        return f"R={self.reps}, k={self.k_sim}, d={self.d_proj}" + (f", final={self.final_dim}" if self.final_dim else "")


@functools.lru_cache(maxsize=256)
def _repetition(input_dim: int, cfg: FDEConfig, rep: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Repetition ``rep``'s SimHash hyperplanes and +-1 projection; the same for queries and documents
    (drawn from the seed and ``rep`` alone, and memoised, so encoding a query draws nothing)."""
    rng = np.random.default_rng([cfg.seed, rep])
    planes = rng.standard_normal((input_dim, cfg.k_sim)).astype(np.float32)
    proj = None
    if cfg.d_proj is not None:
        proj = (rng.choice([-1.0, 1.0], size=(input_dim, cfg.d_proj)) / np.sqrt(cfg.d_proj)).astype(np.float32)
    return planes, proj


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
    similarity times ``reps`` (before any final projection).
    """
    from scipy import sparse

    if kind not in ("query", "doc"):
        raise ValueError(f"kind must be 'query' or 'doc', not {kind!r}")
    n, (total, input_dim) = len(sets), sets.vectors.shape
    if np.any(sets.lengths == 0):
        raise ValueError("every set needs at least one vector")
    n_parts = 2 ** cfg.k_sim
    owner = sets.owner
    draws = [_repetition(input_dim, cfg, rep) for rep in range(cfg.reps)]
    # every repetition's SimHash codes from one matrix product
    sides = (sets.vectors @ np.concatenate([planes for planes, _ in draws], axis=1)) > 0
    powers = 1 << np.arange(cfg.k_sim)
    blocks = []
    for rep, (planes, proj) in enumerate(draws):
        codes = sides[:, rep * cfg.k_sim:(rep + 1) * cfg.k_sim] @ powers
        cell = owner * n_parts + codes
        assign = sparse.csr_matrix((np.ones(total, np.float32), (cell, np.arange(total))), shape=(n * n_parts, total))
        block = np.asarray(assign @ sets.vectors, dtype=np.float32)  # per-partition sums of the tokens
        if kind == "doc":
            counts = np.bincount(cell, minlength=n * n_parts)
            block /= np.maximum(counts, 1)[:, None]  # averages
            empty = counts == 0
            if fill_empty and empty.any():
                hamming = np.bitwise_count(codes[:, None] ^ np.arange(n_parts)[None, :])  # uint8
                nearest = np.minimum.reduceat(hamming, sets.offsets[:-1], axis=0)  # (sets, partitions)
                index = np.where(hamming == nearest[owner], np.arange(total, dtype=np.int32)[:, None], np.int32(total))
                first = np.minimum.reduceat(index, sets.offsets[:-1], axis=0).ravel()
                block[empty] = sets.vectors[first[empty]]  # the nearest token by Hamming distance
        if proj is not None:  # projecting the sums (averages) is projecting each token: it is linear
            block = block @ proj
        blocks.append(block.reshape(n, -1))
    out = np.concatenate(blocks, axis=1)
    if cfg.final_dim:
        out = count_sketch(out, cfg.final_dim, cfg.seed)
    return out


def count_sketch(x: np.ndarray, out_dim: int, seed: int) -> np.ndarray:
    """Count-Sketch of the rows: coordinate i goes, with a random sign, to a random one of ``out_dim``."""
    from scipy import sparse

    rng = np.random.default_rng([seed, 1_000_003])
    target = rng.integers(0, out_dim, size=x.shape[1])
    sign = rng.choice([-1.0, 1.0], size=x.shape[1]).astype(np.float32)
    m = sparse.csr_matrix((sign, (np.arange(x.shape[1]), target)), shape=(x.shape[1], out_dim))
    return np.asarray((m.T @ x.T).T, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Candidate recall
# --------------------------------------------------------------------------------------------

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
