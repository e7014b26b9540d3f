"""Compressed embedding indexes: float16, calibrated int8, binary (with rescoring) and product quantization.

Every method is a :class:`CompressedIndex`: it is built from float32 document embeddings and
answers ``search(queries, k) -> (scores, ids)`` doing *all* the query-time work of the method
(quantising the float query, scanning the compressed documents, rescoring candidates), so that
timing ``search`` times the whole method. ``bytes_per_vector`` is what the method keeps per
document in the index (``extra_bytes_per_vector`` what it reads from elsewhere, e.g. int8 rows
kept on disk for rescoring), measured from faiss's serialised index, not computed from a formula.

The quantisers are the field's own: ``sentence_transformers.util.quantization.quantize_embeddings``
for int8 (per-dimension ranges from calibration embeddings) and binary (sign bits), faiss
(``faiss-cpu``) for the scans: ``IndexFlatIP`` (float32), ``IndexScalarQuantizer`` (float16, and
int8 codes stored as they are), ``IndexBinaryFlat`` (Hamming distance) and ``IndexPQ``.

Rescoring follows sentence-transformers' ``semantic_search_faiss``: take ``k * rescore_multiplier``
candidates from the compressed index, score them again with the float32 query against a finer
copy of the candidates (the unpacked bits, the dequantised int8 rows or the float32 rows), keep the
best ``k``.

Retention ("percent of the float32 score") and its intervals come from :mod:`embrepro.stats`
(``ratio_of_means``, ``paired_bootstrap``). :func:`best_family_range` turns per-budget comparisons
into the range of "how many families are best at some budget" that those intervals allow.
"""

from __future__ import annotations

import itertools
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from embrepro.paths import threads
from embrepro.stats import Interval

RESCORE_SOURCES = ("bits", "int8", "float32")
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


def quantize_int8(emb: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """int8 codes (bucket index - 128) with sentence-transformers' ``quantize_embeddings``."""
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings(np.asarray(emb, dtype=np.float32), precision="int8", ranges=ranges)


def dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Back from int8 codes to the float coordinate system (the lower edge of each bucket)."""
    ranges = ranges.astype(np.float32)
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    return (codes.astype(np.float32) + 128) * steps + ranges[0]


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
    """Calibrated int8 codes (sentence-transformers), searched as int8 query . int8 documents.

    The codes are stored as they are, one byte per dimension (faiss ``QT_8bit_direct_signed``);
    the query is quantised with the same ranges. With ``rescore_multiplier`` > 1, the
    ``k * rescore_multiplier`` best candidates are scored again with the float32 query against the
    dequantised int8 rows, as ``semantic_search_faiss`` does.
    """

    family = "int8"

    def __init__(self, docs: np.ndarray, ranges: np.ndarray, rescore_multiplier: int = 1):
        faiss = _faiss()
        self.ranges = np.asarray(ranges, dtype=np.float32)
        self.codes = quantize_int8(docs, self.ranges)
        self._index = faiss.IndexScalarQuantizer(docs.shape[1], faiss.ScalarQuantizer.QT_8bit_direct_signed,
                                                 faiss.METRIC_INNER_PRODUCT)
        self._add(self.codes.astype(np.float32))
        self.rescore_multiplier = rescore_multiplier
        self.name = "int8" if rescore_multiplier <= 1 else "int8 + rescore"

    def search(self, queries, k):
        q_codes = quantize_int8(queries, self.ranges).astype(np.float32)
        if self.rescore_multiplier <= 1:
            return self._index.search(q_codes, k)
        _, cand = self._index.search(q_codes, k * self.rescore_multiplier)
        return _rescore(queries, cand, lambda ids: dequantize_int8(self.codes[ids], self.ranges), k)


class BinaryIndex(CompressedIndex):
    """Sign bits of the documents, searched by Hamming distance to the query's sign bits.

    ``rescore`` (one of ``RESCORE_SOURCES``) rescores ``k * rescore_multiplier`` Hamming candidates
    with the float32 query against the candidates' bits as 0/1 vectors (``"bits"``, what
    sentence-transformers' ``semantic_search_faiss`` does: nothing else is stored), their int8 rows
    (``"int8"``, kept on disk in the sentence-transformers retrieval demo; needs ``ranges``) or
    their float32 rows (``"float32"``). Scores without rescoring are minus the Hamming distance.
    """

    family = "binary"

    def __init__(self, docs: np.ndarray, rescore: str | None = None, rescore_multiplier: int = 4,
                 ranges: np.ndarray | None = None):
        faiss = _faiss()
        self.dim = docs.shape[1]
        self.bits = quantize_binary(docs)
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

    def search(self, queries, k):
        q_bits = quantize_binary(queries)
        if self.rescore is None:
            dist, ids = self._index.search(q_bits, k)
            return -dist.astype(np.float32), ids
        _, cand = self._index.search(q_bits, k * self.rescore_multiplier)
        return _rescore(queries, cand, self._rows, k)


class PQIndex(CompressedIndex):
    """Product quantization (faiss ``IndexPQ``): ``m`` sub-vectors, each coded by one of 2**nbits
    k-means centroids learnt from ``train`` (default: the documents), searched with the float
    query against the codes' centroid tables (asymmetric distance). k-means starts from ``seed``.
    """

    family = "pq"

    def __init__(self, docs: np.ndarray, m: int, nbits: int = 8, seed: int = 0, train: np.ndarray | None = None):
        faiss = _faiss()
        docs = np.ascontiguousarray(docs, dtype=np.float32)
        if docs.shape[1] % m:
            raise ValueError(f"m = {m} does not divide the dimension {docs.shape[1]}")
        train = np.ascontiguousarray(train if train is not None else docs, dtype=np.float32)
        self._index = faiss.IndexPQ(docs.shape[1], m, nbits, faiss.METRIC_INNER_PRODUCT)
        self._index.pq.cp.seed = int(seed)
        recommended = self._index.pq.cp.min_points_per_centroid << nbits
        if len(train) < recommended:  # one Python warning instead of faiss's one line per piece
            warnings.warn(f"PQ {m}x{nbits}: {len(train)} training vectors for {1 << nbits} centroids per piece, "
                          f"fewer than the {recommended} faiss recommends", stacklevel=2)
            self._index.pq.cp.min_points_per_centroid = 0
        self._index.train(train)
        self._add(docs)
        self.m, self.nbits, self.seed = m, nbits, seed
        self.name = f"PQ {m}x{nbits}"

    def search(self, queries, k):
        return self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


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
