"""Approximate and filtered nearest-neighbour search, with faiss.

* Exact top-k by inner product (for ground truth and for pre-filtering), recall@k of a result
  against the exact one, and a timing helper that repeats a search and keeps every repeat.
* Indexes: exact (``IndexFlatIP``), graph (``IndexHNSWFlat``) and inverted-file (``IndexIVFFlat``),
  all on the inner product (equal to the cosine for normalised vectors).
* Filters: a categorical one (the item's category is in a set) and a range one (the item's value
  lies in a window), each drawn at random to let through about a target share of the items.
* Three ways to search under a filter: **pre-filtering** (exact search over the allowed items),
  **post-filtering** (an unfiltered index search for ``k_prime`` candidates, then the filter), and
  **in-index filtering** (the index skips disallowed items while it searches, via a faiss
  ``IDSelector`` passed in ``SearchParametersHNSW`` or ``SearchParametersIVF``).
* Pre-filtering exists twice: in faiss's C++ (:func:`prefilter_faiss`, an ``IDSelector`` on a flat
  index: the one timed) and in numpy (:func:`prefilter_search`, :func:`exact_top_k_masked`: the
  ground truth and cross-check).
* Post-filtering on precomputed candidates, filters independent of the text (:func:`random_filter`)
  and the arithmetic of how many candidates survive them (:func:`expected_survivors`).
* The cost of a search in distance computations: predicted from the index's structure
  (:func:`predicted_distances`) and counted by faiss (:func:`counted_distances`).

Result ids are arrays of shape (queries, k) padded with -1 where fewer than k items were found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def _faiss():
    import faiss

    return faiss


# --------------------------------------------------------------------------------------------
# Exact search, recall, timing
# --------------------------------------------------------------------------------------------

def exact_top_k(queries: np.ndarray, docs: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """Ids of the ``k`` items with the largest inner product, best first; -1 pads short rows.

    ``allowed`` (optional) is an array of item ids to search among (pre-filtering); the result
    ids are ids of ``docs``, not positions in ``allowed``.
    """
    queries = np.atleast_2d(queries)
    pool = docs if allowed is None else docs[allowed]
    ids = np.arange(len(docs)) if allowed is None else np.asarray(allowed)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    if len(pool) == 0:
        return out
    scores = queries @ pool.T
    kk = min(k, len(pool))
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.take_along_axis(-scores, part, axis=1).argsort(axis=1, kind="stable")
    out[:, :kk] = ids[np.take_along_axis(part, order, axis=1)]
    return out


def exact_top_k_masked(queries: np.ndarray, docs: np.ndarray, masks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Exact filtered top ``k`` of each query among the items its own mask allows (ids of ``docs``,
    best first, -1 pads): one matrix product for all queries, then the disallowed scores set to
    minus infinity. The ground truth of filtered search; equal to :func:`prefilter_search`."""
    queries = np.atleast_2d(queries)
    scores = queries @ docs.T
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, mask in enumerate(masks):
        kk = min(k, int(mask.sum()))
        if kk == 0:
            continue
        row = np.where(mask, scores[i], -np.inf)
        part = np.argpartition(-row, kk - 1)[:kk]
        out[i, :kk] = part[np.argsort(-row[part], kind="stable")]
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-query recall@k: the share of the true top-k (ignoring -1 pads) among the first k found.

    A query whose true list is empty (nothing passes its filter) gets recall 1.
    """
    found, truth = np.atleast_2d(found)[:, :k], np.atleast_2d(truth)[:, :k]
    out = np.empty(len(truth))
    for i, (f, t) in enumerate(zip(found, truth)):
        t = set(t[t >= 0].tolist())
        out[i] = 1.0 if not t else len(t & set(f[f >= 0].tolist())) / len(t)
    return out


def timed(search: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, list[float]]:
    """Run ``search`` ``repeats`` times; its (last) result and the seconds of every repeat."""
    seconds, result = [], None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = search()
        seconds.append(time.perf_counter() - start)
    return result, seconds


def timed_interleaved(searches: dict, repeats: int, seed: int = 0, warmup: int = 1) -> dict:
    """Time several searches side by side: every repeat runs each once, in a fresh random order.

    First, ``warmup`` untimed rounds run every search (caches, lazily built structures, page
    faults). Then ``repeats`` timed rounds follow. On a shared machine, load changes over time;
    interleaving spreads those changes over all the searches instead of penalising whichever ran
    during a busy spell, and repeat ``i`` of one search is paired with repeat ``i`` of another (the
    unit of :func:`embrepro.stats.median_ratio`). Returns
    ``{name: (result of the first timed repeat, [seconds of each repeat])}``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    rng = np.random.default_rng(seed)
    names = list(searches)
    for _ in range(warmup):
        for name in names:
            searches[name]()
    out = {name: [None, []] for name in names}
    for _ in range(repeats):
        for j in rng.permutation(len(names)):
            name = names[j]
            start = time.perf_counter()
            result = searches[name]()
            out[name][1].append(time.perf_counter() - start)
            if out[name][0] is None:
                out[name][0] = result
    return {name: (res, secs) for name, (res, secs) in out.items()}


# --------------------------------------------------------------------------------------------
# Indexes
# --------------------------------------------------------------------------------------------

def flat_index(docs: np.ndarray):
    faiss = _faiss()
    index = faiss.IndexFlatIP(docs.shape[1])
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    return index


def hnsw_index(docs: np.ndarray, m: int = 32, ef_construction: int = 100):
    """An HNSW graph with ``m`` links per node (``2 m`` on the bottom layer)."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(docs.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    return index


def ivf_index(docs: np.ndarray, nlist: int, seed: int = 0, niter: int | None = None):
    """An inverted file of ``nlist`` k-means cells (k-means on all the documents, seeded;
    ``niter`` k-means iterations, faiss's default of 25 when None)."""
    faiss = _faiss()
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    quantizer = faiss.IndexFlatIP(docs.shape[1])
    index = faiss.IndexIVFFlat(quantizer, docs.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    if niter is not None:
        index.cp.niter = niter
    index.train(docs)
    index.add(docs)
    return index


def search_each(index, queries: np.ndarray, k: int, params=None) -> np.ndarray:
    """Search one query at a time (the latency setting of a server); ids, shape (queries, k)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for i in range(len(queries)):
        out[i] = index.search(queries[i:i + 1], k, params=params)[1][0]
    return out


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------

def categorical_filter(categories: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """A mask letting through the items of a random set of categories, about ``target`` of them.

    Categories are taken in random order; one is added if the share stays below 1.25 x target,
    until the share reaches 0.8 x target. If no category is small enough, the smallest is used.
    """
    counts = np.bincount(categories)
    share = counts / counts.sum()
    chosen, total = [], 0.0
    for c in rng.permutation(np.flatnonzero(counts)):
        if total + share[c] <= 1.25 * target:
            chosen.append(c)
            total += share[c]
        if total >= 0.8 * target:
            break
    if not chosen:
        chosen = [int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))]
    return np.isin(categories, chosen)


def range_filter(values: np.ndarray, target: float, rng: np.random.Generator) -> np.ndarray:
    """A mask letting through the items whose value lies in a random window holding ``target`` of them.

    The window runs between two empirical quantiles of ``values`` that are ``target`` apart.
    """
    low_q = rng.uniform(0.0, 1.0 - target)
    low, high = np.quantile(values, [low_q, low_q + target])
    return (values >= low) & (values <= high)


def selector(mask: np.ndarray):
    """A faiss ``IDSelectorBitmap`` for a boolean mask over item ids (the bitmap rides along)."""
    faiss = _faiss()
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bits))
    sel.referenced_objects = [bits]  # faiss keeps a raw pointer: the array must outlive the selector
    return sel


# --------------------------------------------------------------------------------------------
# Filtered search: pre-filter, post-filter, in-index filter
# --------------------------------------------------------------------------------------------

def prefilter_search(queries: np.ndarray, docs: np.ndarray, allowed: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Exact search of each query over its own allowed ids (always exact; cost grows with their number)."""
    return np.vstack([exact_top_k(queries[i], docs, k, allowed[i]) for i in range(len(queries))])


def postfilter_search(index, queries: np.ndarray, masks: Sequence[np.ndarray], k: int, k_prime: int,
                      params=None) -> np.ndarray:
    """Search each query unfiltered for ``k_prime`` candidates, keep the allowed ones, return the first k."""
    k_prime = min(k_prime, index.ntotal)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i in range(len(queries)):
        ids = index.search(queries[i:i + 1], k_prime, params=params)[1][0]
        ids = ids[ids >= 0]
        kept = ids[masks[i][ids]][:k]
        out[i, :len(kept)] = kept
    return out


def filtered_search(index, queries: np.ndarray, selectors: Sequence, k: int,
                    make_params: Callable[[object], object]) -> np.ndarray:
    """In-index filtering: each query searched with ``make_params(its selector)`` (e.g.
    ``lambda s: faiss.SearchParametersHNSW(sel=s, efSearch=64)``)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for i in range(len(queries)):
        out[i] = index.search(queries[i:i + 1], k, params=make_params(selectors[i]))[1][0]
    return out


# --------------------------------------------------------------------------------------------
# Which strategy is fastest: worst slowdowns over settings
# --------------------------------------------------------------------------------------------

class Slowdowns:
    """How far each strategy falls behind its rivals, setting by setting, from paired timings.

    ``times[setting][strategy]`` holds the per-repeat seconds of one strategy in one setting (repeat
    ``i`` of every strategy of a setting timed side by side, so ``t_X[i] / t_Y[i]`` is a paired
    ratio), or ``None`` when the strategy cannot compete there (it never reaches the recall target);
    such a strategy counts as infinitely slow in that setting. All arrays have the same length.

    A strategy's *worst slowdown* is the largest, over settings and rivals, of the median over
    repeats of its time over the rival's. ``smallest(idx)`` is the smallest worst slowdown over the
    strategies for the repeats ``idx`` (a bootstrap resample): above 1, every strategy is slower
    than some rival somewhere (no single winner); below 1, some strategy is the fastest everywhere.
    A strategy that never meets a competing rival has a worst slowdown of 0 (it is never beaten).
    """

    def __init__(self, times: dict, strategies: Sequence[str]):
        self.strategies = list(strategies)
        lengths = {len(t) for per in times.values() for t in per.values() if t is not None}
        if len(lengths) != 1:
            raise ValueError(f"every timing array must have the same (non-zero) length, got {sorted(lengths)}")
        self.units = lengths.pop()
        self.pairs, rows = [], []
        for setting, per in times.items():
            for x in self.strategies:
                for y in self.strategies:
                    if y == x or per.get(y) is None:
                        continue
                    tx = per.get(x)
                    ratio = (np.full(self.units, np.inf) if tx is None
                             else np.asarray(tx, dtype=np.float64) / np.asarray(per[y], dtype=np.float64))
                    self.pairs.append((x, setting, y))
                    rows.append(ratio)
        self.ratios = np.vstack(rows) if rows else np.zeros((0, self.units))
        self.owner = np.array([self.strategies.index(x) for x, _, _ in self.pairs], dtype=np.int64)

    def worst(self, idx: np.ndarray | None = None) -> dict[str, tuple[float, str, str]]:
        """Per strategy: (worst slowdown, its setting, the rival), over the repeats ``idx`` (all by default)."""
        idx = np.arange(self.units) if idx is None else np.asarray(idx)
        med = np.median(self.ratios[:, idx], axis=1) if len(self.pairs) else np.zeros(0)
        out = {}
        for j, x in enumerate(self.strategies):
            rows = np.flatnonzero(self.owner == j)
            if len(rows) == 0:
                out[x] = (0.0, "", "")
                continue
            p = int(rows[np.argmax(med[rows])])
            out[x] = (float(med[p]), self.pairs[p][1], self.pairs[p][2])
        return out

    def smallest(self, idx: np.ndarray | None = None) -> float:
        """The smallest worst slowdown over the strategies (the statistic of "no single winner")."""
        return min(value for value, _, _ in self.worst(idx).values())


# --------------------------------------------------------------------------------------------
# Pre-filtering inside faiss, filters independent of the text, and candidate survival
# --------------------------------------------------------------------------------------------

def prefilter_faiss(flat, queries: np.ndarray, selectors: Sequence, k: int) -> np.ndarray:
    """Pre-filtering in faiss's C++: an exact ``IndexFlatIP`` scan restricted by each query's
    ``IDSelector`` (``SearchParameters(sel=...)``), one query per call.

    faiss computes the inner product only for the allowed ids (the selector is tested first), so
    its cost is one bitmap test per item plus ``d`` multiply-adds per allowed item: the like-for-like
    counterpart of the indexes' searches. :func:`prefilter_search` (numpy) is its cross-check.
    """
    faiss = _faiss()
    return filtered_search(flat, queries, selectors, k, lambda sel: faiss.SearchParameters(sel=sel))


def random_filter(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A mask letting through exactly ``size`` of ``n`` items drawn uniformly at random: an
    attribute independent of the text (the control for a filter correlated with the query)."""
    if not 0 <= size <= n:
        raise ValueError(f"size must lie in [0, {n}], got {size}")
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=size, replace=False)] = True
    return mask


def candidates(index, queries: np.ndarray, k_prime: int, params=None) -> np.ndarray:
    """The ``k_prime`` unfiltered candidates of each query (one query per call), shape (queries, k')."""
    return search_each(index, queries, min(k_prime, index.ntotal), params)


def postfilter_from_candidates(cands: np.ndarray, masks: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Post-filtering on precomputed candidates: (the first ``k`` allowed ids of each row, padded
    with -1; the number of candidates that pass each query's filter)."""
    out = np.full((len(cands), k), -1, dtype=np.int64)
    survivors = np.zeros(len(cands), dtype=np.int64)
    for i, row in enumerate(cands):
        row = row[row >= 0]
        kept = row[masks[i][row]]
        survivors[i] = len(kept)
        out[i, :min(k, len(kept))] = kept[:k]
    return out, survivors


def expected_survivors(k_prime: int, sizes: Sequence[int], n: int) -> tuple[float, float]:
    """Mean over queries of the number of ``k_prime`` candidates that pass a filter independent of
    the text, and its standard error.

    If a filter lets through ``size`` of ``n`` items at random, the number of ``k_prime`` fixed
    candidates it keeps is hypergeometric: mean ``k' s`` with ``s = size / n``, variance
    ``k' s (1 - s) (n - k') / (n - 1)``. Returns (mean of the means, sqrt(sum of variances) / queries).
    """
    s = np.asarray(sizes, dtype=np.float64) / n
    if len(s) == 0 or np.any((s < 0) | (s > 1)) or not 0 < k_prime <= n:
        raise ValueError("need 0 < k_prime <= n and sizes in [0, n]")
    mean = k_prime * s
    var = k_prime * s * (1 - s) * (n - k_prime) / max(n - 1, 1)
    return float(mean.mean()), float(np.sqrt(var.sum()) / len(s))


# --------------------------------------------------------------------------------------------
# What a search costs: distance computations, predicted and counted by faiss
# --------------------------------------------------------------------------------------------

def hnsw_levels(n: int, m: int) -> float:
    """Expected number of HNSW layers above the bottom one: faiss draws a node's top layer with
    probability falling by a factor ``m`` per layer (``mL = 1 / ln m``), so about ``ln n / ln m``."""
    return float(np.log(max(n, 2)) / np.log(m))


def predicted_distances(method: str, n: int, *, nlist: int = 0, nprobe: int = 0, ef: int = 0, m: int = 0) -> float:
    """Distance computations per query predicted from an index's structure.

    * ``exact``: ``n`` (every vector, ``n d`` multiply-adds);
    * ``IVF``: ``nlist`` centroid distances plus the items of the ``nprobe`` scanned cells,
      ``nprobe / nlist x n`` when cells have equal sizes;
    * ``HNSW``: an upper bound: a greedy descent through about ``ln n / ln m`` upper layers with up to
      ``m`` neighbours per node, then on the bottom layer about ``ef`` expanded nodes with up to
      ``2 m`` neighbours each (neighbours already visited are not computed again, so the count
      falls below the bound).
    """
    if method == "exact":
        return float(n)
    if method == "IVF":
        if not 0 < nprobe <= nlist:
            raise ValueError(f"need 0 < nprobe <= nlist, got nprobe={nprobe}, nlist={nlist}")
        return float(nlist + nprobe / nlist * n)
    if method == "HNSW":
        if ef < 1 or m < 2:
            raise ValueError(f"need ef >= 1 and m >= 2, got ef={ef}, m={m}")
        return float(hnsw_levels(n, m) * m + ef * 2 * m)
    raise ValueError(f"unknown method {method!r}")


def counted_distances(index, queries: np.ndarray, k: int, params=None) -> dict:
    """Distance computations per query that faiss counts while searching one query per call.

    HNSW: ``hnsw_stats.ndis`` (and ``nhops``, the nodes expanded); IVF: ``indexIVF_stats.ndis``
    (items scanned in the inverted lists) plus the ``nlist`` centroid distances of the coarse
    quantiser (a flat scan faiss does not count); a flat index: ``ntotal`` by construction.
    Returns ``{"distances": per query, "hops": per query (HNSW) or nan}``.
    """
    faiss = _faiss()
    nq = len(queries)
    if hasattr(index, "hnsw"):
        stats = faiss.cvar.hnsw_stats
        stats.reset()
        search_each(index, queries, k, params)
        return {"distances": stats.ndis / nq, "hops": stats.nhops / nq}
    if hasattr(index, "invlists"):
        stats = faiss.cvar.indexIVF_stats
        stats.reset()
        search_each(index, queries, k, params)
        return {"distances": stats.ndis / nq + index.nlist, "hops": float("nan")}
    return {"distances": float(index.ntotal), "hops": float("nan")}
