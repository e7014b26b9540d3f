"""Compressed embedding indexes: float16, calibrated int8, binary (with rescoring) and product quantization.

Every method is a :class:`CompressedIndex`: it is built from float32 document embeddings and
answers ``search(queries, k) -> (scores, ids)`` doing *all* the query-time work of the method
(quantising the float query, scanning the compressed documents, rescoring candidates), so that
timing ``search`` times the whole method. ``bytes_per_vector`` is what the method keeps per
document in the index (``extra_bytes_per_vector`` what it reads from elsewhere, e.g. int8 rows
kept on disk for rescoring), measured from faiss's serialised index, not computed from a formula.

**Which side is quantised.** ``query="quantized"`` (symmetric) quantises the query like the
documents and scores codes against codes: int8 codes dot int8 codes (what an int8 vector index and
the sentence-transformers blog's int8 numbers use), Hamming distance between sign bits, PQ with the
query replaced by its own PQ reconstruction (symmetric distance). ``query="float"`` (asymmetric)
keeps the float32 query and scores it against each document's decoded codes: the dequantised int8
row, the sign bits as 0/1, the PQ centroids (faiss's asymmetric distance). Compare methods with the
same setting.

**int8** codes follow sentence-transformers' ``quantize_embeddings(..., precision="int8", ranges=...)``
(bucket ``floor((x - min) / step)`` clipped to 0..255, minus 128), written out here and tested equal
to the library's. **Rescoring** follows sentence-transformers' ``semantic_search_faiss``: take
``k * rescore_multiplier`` candidates from the compressed index, score them again with the float32
query against a finer copy of the candidates (the unpacked bits, the dequantised int8 rows or the
float32 rows), keep the best ``k``. For int8 candidates, sentence-transformers 6.x dequantises
before rescoring; its 2024 code (and the blog's retrieval demo) multiplied the float query with the
raw int8 codes: ``Int8Index(rescore_against="codes")`` keeps that variant for comparison.

**Held-out fitting.** :class:`CrossFitIndex` splits the documents at random into two halves; the
quantiser fitted on one half (int8 ranges, PQ codebooks) encodes the other, and the two halves'
result lists are merged by score, so that no document is encoded by a quantiser that saw it.

Retention ("percent of the float32 score") and its intervals come from :mod:`embrepro.stats`
(``ratio_of_means``, ``paired_bootstrap``); :func:`retention_rule` is the "keeps about X%" rule
of the chapter. :func:`best_family_range` turns per-budget comparisons into the range of "how many
families are best at some budget" that those intervals allow.
"""

from __future__ import annotations

import copy
import itertools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from embrepro.paths import threads
from embrepro.claims import Value
from embrepro.stats import Interval

RESCORE_SOURCES = ("bits", "int8", "float32")
QUERY_SIDES = ("quantized", "float")
# Byte value -> its 8 bits as 0/1 floats (most significant first, as np.packbits packs them).
_BIT_ROWS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)


def _faiss():
    import faiss

    return faiss


def set_threads(n: int | None = None) -> int:
    """Threads faiss may use (default :func:`embrepro.paths.threads`); returns the number set.

    One thread gives the steadiest timings on a shared machine: with more, OpenMP threads that wait
    for a busy core make small searches erratic.
    """
    n = int(n or threads())
    _faiss().omp_set_num_threads(n)
    return n


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """Per-dimension (min, max) of calibration embeddings, shape (2, dim), as sentence-transformers uses them."""
    calibration = np.asarray(calibration, dtype=np.float32)
    return np.vstack([calibration.min(axis=0), calibration.max(axis=0)])


def _int8_steps(ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, steps) of the 255 buckets per dimension; a zero-width range gets step 1."""
    ranges = np.asarray(ranges, dtype=np.float32)
    steps = (ranges[1] - ranges[0]) / np.float32(255)
    return ranges[0], np.where(steps == 0, np.float32(1), steps).astype(np.float32)


def quantize_int8(emb: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """int8 codes: bucket ``floor((x - min_j) / step_j)`` clipped to 0..255, minus 128.

    ``step_j = (max_j - min_j) / 255`` from the calibration ranges; values outside the range are
    clipped into the first or last bucket. The same arithmetic (float32) as sentence-transformers'
    ``quantize_embeddings(emb, precision="int8", ranges=ranges)``; the tests hold them equal.
    """
    starts, steps = _int8_steps(ranges)
    buckets = np.clip(np.floor((np.asarray(emb, dtype=np.float32) - starts) / steps), 0, 255)
    return (buckets - 128).astype(np.int8)


def dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Back from int8 codes to the float coordinate system (the lower edge of each bucket), as
    sentence-transformers' ``semantic_search_faiss`` / ``_usearch`` do before rescoring."""
    starts, steps = _int8_steps(ranges)
    return (codes.astype(np.float32) + 128) * steps + starts


def quantize_binary(emb: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte (``precision="ubinary"``): bit = 1 where the value is above 0."""
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings(np.asarray(emb, dtype=np.float32), precision="ubinary")


class CompressedIndex:
    """A searchable compressed copy of the documents (see the module docstring)."""

    name: str = ""
    family: str = ""
    bytes_per_vector: float = 0.0  # measured: serialised bytes added per document
    fixed_bytes: float = 0.0  # measured: the trained, empty index (codebooks, ranges)
    extra_bytes_per_vector: float = 0.0  # rows read from elsewhere at query time (rescoring)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def variant(self, **settings) -> "CompressedIndex":
        """The same stored codes searched differently (e.g. ``query="float"``): a shallow copy that
        shares the faiss index, so one trained index serves several search settings."""
        other = copy.copy(self)
        for name, value in settings.items():
            if not hasattr(self, name):
                raise AttributeError(f"{type(self).__name__} has no setting {name!r}")
            setattr(other, name, value)
        other._check()
        return other

    def _check(self) -> None:
        if getattr(self, "query", "quantized") not in QUERY_SIDES:
            raise ValueError(f"query must be one of {QUERY_SIDES}, not {self.query!r}")

    def _add(self, rows: np.ndarray) -> None:
        """Add the documents, measuring the serialised index before and after: the difference per
        document is ``bytes_per_vector``; what a trained, empty index already takes is ``fixed_bytes``
        (e.g. PQ's codebooks), which does not grow with the collection."""
        self.fixed_bytes = float(self.serialised_bytes())
        self._index.add(rows)
        self.bytes_per_vector = (self.serialised_bytes() - self.fixed_bytes) / self._index.ntotal

    def serialised_bytes(self) -> int:
        """Size of the whole index as faiss writes it."""
        faiss = _faiss()
        binary = isinstance(self._index, faiss.IndexBinary)
        return len((faiss.serialize_index_binary if binary else faiss.serialize_index)(self._index))


class FloatIndex(CompressedIndex):
    """Exact inner-product search over float32 (``IndexFlatIP``) or float16 (``QT_fp16``) rows."""

    family = "float"

    def __init__(self, docs: np.ndarray, precision: str = "float32"):
        faiss = _faiss()
        docs = np.ascontiguousarray(docs, dtype=np.float32)
        if precision == "float32":
            self._index = faiss.IndexFlatIP(docs.shape[1])
        elif precision == "float16":
            self._index = faiss.IndexScalarQuantizer(docs.shape[1], faiss.ScalarQuantizer.QT_fp16,
                                                     faiss.METRIC_INNER_PRODUCT)
        else:
            raise ValueError(f"precision must be float32 or float16, not {precision!r}")
        self._add(docs)
        self.name, self.precision = precision, precision

    def search(self, queries, k):
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


class Int8Index(CompressedIndex):
    """Calibrated int8 codes (one byte per dimension, faiss ``QT_8bit_direct_signed``).

    ``query="quantized"`` (default): the query is quantised with the same ranges and the score is
    the integer dot product of the codes, which weighs dimension j by ``1 / step_j``.
    ``query="float"``: the float32 query against the dequantised rows, ``q . dequantize(codes)``,
    scanned by faiss's ``QT_8bit`` over the same codes, its decoding set to sentence-transformers'
    dequantisation (faiss's direct int8 scan would round a float query to integers). With ``rescore_multiplier`` > 1, the ``k * rescore_multiplier``
    best candidates are scored again with the float32 query against their dequantised rows
    (``rescore_against="dequantized"``, what sentence-transformers 6.x does) or against their raw
    codes (``"codes"``, what its 2024 code and the blog's demo did).
    """

    family = "int8"

    def __init__(self, docs: np.ndarray, ranges: np.ndarray, rescore_multiplier: int = 1,
                 query: str = "quantized", rescore_against: str = "dequantized"):
        faiss = _faiss()
        self.ranges = np.asarray(ranges, dtype=np.float32)
        self.codes = quantize_int8(docs, self.ranges)
        starts, self._steps = _int8_steps(self.ranges)
        self._index = faiss.IndexScalarQuantizer(docs.shape[1], faiss.ScalarQuantizer.QT_8bit_direct_signed,
                                                 faiss.METRIC_INNER_PRODUCT)
        self._add(self.codes.astype(np.float32))
        # the same codes for the float query: faiss's QT_8bit decodes code u (0..255) as
        # vmin + (u + 0.5) / 255 * vdiff, which is the dequantised lower edge min + u * step when
        # vmin = min - step / 2 and vdiff = 255 * step
        self._float_index = faiss.IndexScalarQuantizer(docs.shape[1], faiss.ScalarQuantizer.QT_8bit,
                                                       faiss.METRIC_INNER_PRODUCT)
        faiss.copy_array_to_vector(np.concatenate([starts - self._steps / 2, 255 * self._steps]).astype(np.float32),
                                   self._float_index.sq.trained)
        self._float_index.is_trained = True
        self._float_index.add_sa_codes((self.codes.astype(np.int16) + 128).astype(np.uint8))
        self.rescore_multiplier, self.query, self.rescore_against = rescore_multiplier, query, rescore_against
        self._check()
        self.name = "int8" if rescore_multiplier <= 1 else "int8 + rescore"

    def _check(self) -> None:
        super()._check()
        if self.rescore_against not in ("dequantized", "codes"):
            raise ValueError(f"rescore_against must be 'dequantized' or 'codes', not {self.rescore_against!r}")

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        if self.rescore_against == "codes":
            return self.codes[ids].astype(np.float32)
        return dequantize_int8(self.codes[ids], self.ranges)

    def search(self, queries, k):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        n = k * self.rescore_multiplier if self.rescore_multiplier > 1 else k
        if self.query == "quantized":
            scores, ids = self._index.search(quantize_int8(queries, self.ranges).astype(np.float32), n)
        else:
            scores, ids = self._float_index.search(queries, n)
        if self.rescore_multiplier <= 1:
            return scores, ids
        return _rescore(queries, ids, self._rows, k)


class BinaryIndex(CompressedIndex):
    """Sign bits of the documents (bit = 1 where the value is above 0).

    ``query="quantized"`` (default): Hamming distance to the query's sign bits; scores are minus
    the distance. ``query="float"``: the float32 query against the bits read as 0/1 vectors,
    ``q . bits`` for every document, scanned by faiss as a product quantizer whose codebooks are
    the 256 bit patterns of a byte (each stored byte is a code; no training).
    ``rescore`` (one of ``RESCORE_SOURCES``) rescores ``k * rescore_multiplier`` Hamming candidates
    with the float32 query against the candidates' bits as 0/1 vectors (``"bits"``, what
    sentence-transformers' ``semantic_search_faiss`` does: nothing else is stored), their int8 rows
    (``"int8"``, kept on disk in the sentence-transformers retrieval demo; needs ``ranges``) or
    their float32 rows (``"float32"``).
    """

    family = "binary"

    def __init__(self, docs: np.ndarray, rescore: str | None = None, rescore_multiplier: int = 4,
                 ranges: np.ndarray | None = None, query: str = "quantized"):
        faiss = _faiss()
        self.dim = docs.shape[1]
        self.bits = quantize_binary(docs)
        self.query = query
        self._check()
        if query == "float":
            if rescore is not None:
                raise ValueError("a float-query scan is already exact on the bits; rescoring needs query='quantized'")
            nbytes = self.bits.shape[1]
            self._index = faiss.IndexPQ(nbytes * 8, nbytes, 8, faiss.METRIC_INNER_PRODUCT)
            faiss.copy_array_to_vector(np.tile(_BIT_ROWS, (nbytes, 1)).ravel(), self._index.pq.centroids)
            self._index.is_trained = True
            self.fixed_bytes = float(self.serialised_bytes())
            self._index.add_sa_codes(self.bits)
            self.bytes_per_vector = (self.serialised_bytes() - self.fixed_bytes) / self._index.ntotal
        else:
            self._index = faiss.IndexBinaryFlat(self.bits.shape[1] * 8)
            self._add(self.bits)
        if rescore is not None and rescore not in RESCORE_SOURCES:
            raise ValueError(f"rescore must be None or one of {RESCORE_SOURCES}, not {rescore!r}")
        self.rescore, self.rescore_multiplier = rescore, rescore_multiplier
        if rescore == "bits":
            self._rows = lambda ids: _BIT_ROWS[self.bits[ids]].reshape(*ids.shape, -1)[..., :self.dim]
        elif rescore == "int8":
            if ranges is None:
                raise ValueError("int8 rescoring needs the calibration ranges")
            codes = quantize_int8(docs, ranges)
            self._rows = lambda ids: dequantize_int8(codes[ids], ranges)
            self.extra_bytes_per_vector = float(codes.shape[1])
        elif rescore == "float32":
            floats = np.ascontiguousarray(docs, dtype=np.float32)
            self._rows = lambda ids: floats[ids]
            self.extra_bytes_per_vector = float(floats.shape[1] * 4)
        self.name = "binary" if rescore is None else f"binary + rescore ({rescore})"

    def variant(self, **settings):
        raise TypeError("a binary index stores different things per query side; build one with query=...")

    def search(self, queries, k):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.query == "float":
            padded = np.zeros((len(queries), self._index.d), dtype=np.float32)
            padded[:, :self.dim] = queries
            return self._index.search(padded, k)
        q_bits = quantize_binary(queries)
        if self.rescore is None:
            dist, ids = self._index.search(q_bits, k)
            return -dist.astype(np.float32), ids
        _, cand = self._index.search(q_bits, k * self.rescore_multiplier)
        return _rescore(queries, cand, self._rows, k)


class PQIndex(CompressedIndex):
    """Product quantization (faiss ``IndexPQ``): ``m`` sub-vectors, each coded by one of 2**nbits
    k-means centroids learnt from ``train`` (default: the documents themselves; pass held-out
    vectors, or use :class:`CrossFitIndex`). k-means starts from ``seed``.

    ``query="float"`` (default): the float query against the codes' centroid tables (asymmetric
    distance, faiss's search). ``query="quantized"``: the query is replaced by its own PQ
    reconstruction first, so codes meet codes (symmetric distance).
    """

    family = "pq"

    def __init__(self, docs: np.ndarray, m: int, nbits: int = 8, seed: int = 0, train: np.ndarray | None = None,
                 query: str = "float"):
        faiss = _faiss()
        docs = np.ascontiguousarray(docs, dtype=np.float32)
        if docs.shape[1] % m:
            raise ValueError(f"m = {m} does not divide the dimension {docs.shape[1]}")
        self.query = query
        self._check()
        train = np.ascontiguousarray(train if train is not None else docs, dtype=np.float32)
        self._index = faiss.IndexPQ(docs.shape[1], m, nbits, faiss.METRIC_INNER_PRODUCT)
        self._index.pq.cp.seed = int(seed)
        recommended = self._index.pq.cp.min_points_per_centroid << nbits
        self.n_train = len(train)
        if len(train) < recommended:  # one Python warning instead of faiss's one line per piece
            warnings.warn(f"PQ {m}x{nbits}: {len(train)} training vectors for {1 << nbits} centroids per piece, "
                          f"fewer than the {recommended} faiss recommends", stacklevel=2)
            self._index.pq.cp.min_points_per_centroid = 0
        self._index.train(train)
        self._add(docs)
        self.m, self.nbits, self.seed = m, nbits, seed
        self.name = f"PQ {m}x{nbits}"

    def search(self, queries, k):
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if self.query == "quantized":
            queries = self._index.sa_decode(self._index.sa_encode(queries))
        return self._index.search(queries, k)


class CrossFitIndex(CompressedIndex):
    """Cross-fitting: no document is encoded by a quantiser fitted on it.

    The documents are split at random (``seed``) into two halves A and B. ``build(fit, encode)``
    makes an index of the rows ``encode`` with a quantiser fitted on the rows ``fit`` (int8 ranges,
    PQ codebooks): B's index is fitted on A, A's on B. Every query searches both halves and the two
    lists are merged by score. Float-query and rescored scores estimate the same ``q . d`` in both
    halves, so the merge is exact for them; codes-against-codes scores (int8) use each half's own
    buckets, which agree only approximately.
    """

    def __init__(self, docs: np.ndarray, build: Callable[[np.ndarray, np.ndarray], CompressedIndex], seed: int = 0):
        docs = np.ascontiguousarray(docs, dtype=np.float32)
        order = np.random.default_rng(seed).permutation(len(docs))
        half = len(docs) // 2
        self.parts = [np.sort(order[:half]), np.sort(order[half:])]
        self.indexes = [build(docs[self.parts[1]], docs[self.parts[0]]),
                        build(docs[self.parts[0]], docs[self.parts[1]])]
        first = self.indexes[0]
        self.family, self.name, self.seed = first.family, first.name, seed
        sizes = np.array([len(p) for p in self.parts], dtype=float)
        self.bytes_per_vector = float(sizes @ [ix.bytes_per_vector for ix in self.indexes] / sizes.sum())
        self.extra_bytes_per_vector = float(sizes @ [ix.extra_bytes_per_vector for ix in self.indexes] / sizes.sum())
        self.fixed_bytes = float(sum(ix.fixed_bytes for ix in self.indexes))

    def variant(self, **settings) -> "CrossFitIndex":
        other = copy.copy(self)
        other.indexes = [ix.variant(**settings) for ix in self.indexes]
        return other

    def serialised_bytes(self) -> int:
        return sum(ix.serialised_bytes() for ix in self.indexes)

    def search(self, queries, k):
        scores, ids = [], []
        for part, index in zip(self.parts, self.indexes):
            s, i = index.search(queries, k)
            ids.append(np.where(i >= 0, part[np.clip(i, 0, None)], -1))
            scores.append(np.where(i >= 0, s, -np.inf))
        scores, ids = np.hstack(scores), np.hstack(ids)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def _rescore(queries: np.ndarray, cand: np.ndarray, rows: Callable[[np.ndarray], np.ndarray], k: int):
    """Score candidates ``cand`` (queries x n) again with the float queries; keep the best ``k``."""
    queries = np.asarray(queries, dtype=np.float32)
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    scores = np.einsum("qd,qnd->qn", queries, rows(safe))
    scores[~valid] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(cand, order, 1)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------

def to_run(scores: np.ndarray, ids: np.ndarray, doc_ids, query_ids) -> dict[str, dict[str, float]]:
    """A pytrec_eval run from ``search``'s output (faiss marks missing results with id -1)."""
    return {q: {doc_ids[j]: float(s) for s, j in zip(scores[i], ids[i]) if j >= 0}
            for i, q in enumerate(query_ids)}


def time_search(index: CompressedIndex, queries: np.ndarray, k: int, mode: str = "batch") -> float:
    """Seconds to answer all ``queries``: in one call (``"batch"``) or one query per call (``"single"``)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    start = time.perf_counter()
    if mode == "batch":
        index.search(queries, k)
    elif mode == "single":
        for i in range(len(queries)):
            index.search(queries[i:i + 1], k)
    else:
        raise ValueError(f"mode must be batch or single, not {mode!r}")
    return time.perf_counter() - start


def topk_agreement(ids: np.ndarray, reference: np.ndarray) -> float:
    """Mean fraction of the reference's top-k (per query) that ``ids`` also returns in its top-k."""
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(ids, reference)]))


def retention_rule(target: float, margin: float, basis: str) -> Value:
    """"Keeps about ``target``% of float32's score": the retention interval (in %) must lie within
    ``target`` ± ``margin`` points to reproduce, wholly outside to fail; otherwise inconclusive."""
    return Value(target=target, tolerance=margin, unit="%", basis=basis)


def best_family_range(leaders: Mapping[object, str], leads: Mapping[object, Mapping[str, Interval]],
                      level: float = 0.95) -> Interval:
    """How many different families are best at some budget, as the range the intervals allow.

    ``leaders[b]`` is the family of the method with the highest mean score at budget ``b``;
    ``leads[b][f]`` is the interval of that method's score minus the best method of family ``f``
    (every other family eligible at ``b``), made simultaneous by the caller (e.g. Bonferroni).
    A family whose interval reaches 0 or below cannot be ruled out as best at ``b``. Over every way
    of picking one possible best family per budget, the result's ``low`` is the fewest distinct
    families and ``high`` the most; ``estimate`` counts the distinct leaders. ``low >= 2`` means two
    families are each clearly best somewhere; ``high == 1`` means one family is clearly best
    everywhere.
    """
    if not leaders:
        raise ValueError("best_family_range needs at least one budget")
    if set(leads) - set(leaders):
        raise ValueError(f"leads given for budgets without a leader: {sorted(set(leads) - set(leaders))}")
    options = []
    for budget, leader in leaders.items():
        possible = {leader} | {family for family, iv in leads.get(budget, {}).items() if iv.low <= 0}
        options.append(sorted(possible))
    counts = [len(set(choice)) for choice in itertools.product(*options)]
    return Interval(float(len(set(leaders.values()))), float(min(counts)), float(max(counts)), level,
                    f"families possibly best at each of {len(leaders)} budgets (simultaneous intervals)",
                    len(leaders))
