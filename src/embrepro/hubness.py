"""Hubness: how often each point is someone's nearest neighbour, and methods that even it out.

Conventions. A *reference* set ``R`` (the kNN classifier's training items) is searched by a set of
*queries* ``Q`` (the test items). The **k-occurrence** ``N_k(j)`` of reference item ``j`` counts the
queries that have ``j`` among their ``k`` nearest neighbours; hubs have large ``N_k``, anti-hubs zero.
Hubness is summarised by the **k-skewness** (the sample skewness of ``N_k``, Radovanović et al. 2010)
and the **Robin Hood index** (the share of all occurrences that would have to move to give every item
the mean, Feldbauer et al. 2018).

Every method is fitted on ``R`` alone and then applied to any query, so that nothing about the test
items (least of all their labels) enters a statistic: ``fit_*`` look only at ``R``; a query contributes
only its own distances to ``R``.

* :class:`Centering`: subtract the mean of ``R``, then L2-normalise rows.
* :class:`FNorm` (Nielsen & Hansen's "force normal"): per dimension, map a value through ``R``'s
  empirical CDF onto standard-normal quantiles (``R``'s ``i``-th smallest value goes to
  ``Φ⁻¹((i + ½)/n)``; a query value is interpolated between them), then L2-normalise rows.
* Secondary distances on a candidate graph (:func:`knn_graph` with ``n_candidates`` neighbours, then
  re-ranked, as scikit-hubness does): :func:`mutual_proximity` (Gaussian, Schnitzer et al. 2012),
  :func:`local_scaling` (Zelnik-Manor & Perona's σ = distance to the k-th neighbour) and
  :func:`csls` (Conneau et al. 2018). Their per-reference statistics come from ``R``'s own graph
  with each item's self-match left out (:func:`reference_graph`).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = ["Centering", "FNorm", "choose_k", "csls", "csls_reference", "k_occurrence", "k_skewness", "knn_error",
           "knn_graph", "knn_predict", "local_scaling", "mutual_proximity", "reference_graph", "robin_hood"]


def k_occurrence(neighbors: np.ndarray, n_reference: int, weights: np.ndarray | None = None) -> np.ndarray:
    """``N_k``: how often each reference index appears in the rows of ``neighbors`` (n_queries, k).
    ``weights`` (one per query) counts a query that many times (a bootstrap resample)."""
    neighbors = np.asarray(neighbors)
    w = None if weights is None else np.repeat(np.asarray(weights, dtype=float), neighbors.shape[1])
    return np.bincount(neighbors.ravel(), weights=w, minlength=n_reference).astype(float)


def k_skewness(nk: np.ndarray) -> float:
    """Sample skewness E[(N_k - mean)^3] / sd^3 (population moments, as scipy's default)."""
    return float(stats.skew(np.asarray(nk, dtype=float)))


def robin_hood(nk: np.ndarray) -> float:
    """Robin Hood index: sum |N_k - mean| / (2 sum N_k); 0 when every item occurs equally often."""
    nk = np.asarray(nk, dtype=float)
    return float(np.abs(nk - nk.mean()).sum() / (2 * nk.sum()))


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class Centering:
    """Subtract the reference mean, then L2-normalise (the paper's "centering + normalisation")."""

    def fit(self, R: np.ndarray) -> "Centering":
        self.mean_ = np.asarray(R, dtype=np.float64).mean(axis=0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(X, dtype=np.float64) - self.mean_)


class FNorm:
    """Rank each dimension onto standard-normal quantiles (fitted on R), then L2-normalise rows."""

    def fit(self, R: np.ndarray) -> "FNorm":
        R = np.asarray(R, dtype=np.float64)
        n = R.shape[0]
        self.sorted_ = np.sort(R, axis=0)
        self.quantiles_ = special.ndtri((np.arange(n) + 0.5) / n)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        Z = np.empty_like(X)
        for d in range(X.shape[1]):  # values beyond R's range get R's extreme quantiles
            Z[:, d] = np.interp(X[:, d], self.sorted_[:, d], self.quantiles_)
        return _unit(Z)


def knn_graph(Q: np.ndarray, R: np.ndarray, n_neighbors: int, exclude_self: bool = False,
              chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances and indices of each query's ``n_neighbors`` nearest references, nearest
    first (ties broken by index). ``exclude_self``: Q is R, and row i never returns item i."""
    Q, R = np.asarray(Q, dtype=np.float32), np.asarray(R, dtype=np.float32)
    n = min(n_neighbors, R.shape[0] - int(exclude_self))
    rr = (R.astype(np.float64) ** 2).sum(axis=1)
    dist, idx = np.empty((len(Q), n)), np.empty((len(Q), n), dtype=np.int64)
    for start in range(0, len(Q), chunk):
        q = Q[start:start + chunk]
        d2 = (q.astype(np.float64) ** 2).sum(axis=1)[:, None] + rr[None, :] - 2.0 * (q @ R.T)
        if exclude_self:
            d2[np.arange(len(q)), np.arange(start, start + len(q))] = np.inf
        part = np.argpartition(d2, n - 1, axis=1)[:, :n] if n < R.shape[0] else np.tile(np.arange(R.shape[0]), (len(q), 1))
        vals = np.take_along_axis(d2, part, axis=1)
        order = np.lexsort((part, vals), axis=1)
        idx[start:start + len(q)] = np.take_along_axis(part, order, axis=1)
        dist[start:start + len(q)] = np.sqrt(np.maximum(np.take_along_axis(vals, order, axis=1), 0.0))
    return dist, idx


def reference_graph(R: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """R's own kNN graph without self-matches: where the per-reference statistics come from."""
    return knn_graph(R, R, n_neighbors, exclude_self=True)


def _rerank(new: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((idx, new), axis=1)
    return np.take_along_axis(new, order, axis=1), np.take_along_axis(idx, order, axis=1)


def mutual_proximity(dist: np.ndarray, idx: np.ndarray, ref_dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mutual proximity: 1 - P(X > d | query) P(Y > d | reference), each distance
    distribution a normal fitted to that point's candidate distances (the query's row of ``dist``,
    the reference's row of ``ref_dist``), then re-ranked."""
    mu_r, sd_r = ref_dist.mean(axis=1), ref_dist.std(axis=1)
    mu_q, sd_q = dist.mean(axis=1, keepdims=True), dist.std(axis=1, keepdims=True)
    sf = stats.norm.sf(dist, mu_q, sd_q) * stats.norm.sf(dist, mu_r[idx], sd_r[idx])
    return _rerank(1.0 - sf, idx)


def local_scaling(dist: np.ndarray, idx: np.ndarray, ref_dist: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Local scaling: 1 - exp(-d^2 / (σ_q σ_r)), σ = distance to a point's k-th nearest reference."""
    sigma_q, sigma_r = dist[:, k - 1:k], ref_dist[:, k - 1]
    return _rerank(1.0 - np.exp(-dist ** 2 / np.maximum(sigma_q * sigma_r[idx], 1e-12)), idx)


def csls_reference(R: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """R's own graph on unit vectors, self-matches left out (:func:`reference_graph` of the normalised
    rows): what :func:`csls` needs from R. Compute it once and pass it to every call on the same R."""
    return reference_graph(_unit(np.asarray(R, dtype=np.float64)), n_neighbors)


def csls(Q: np.ndarray, R: np.ndarray, n_candidates: int, k: int = 10,
         exclude_self: bool = False, reference: tuple[np.ndarray, np.ndarray] | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """CSLS on cosine: 2 cos(q, y) - r(q) - r(y), r = mean cosine to the k nearest references (for a
    reference y, from R's own graph without y itself), ranked among each query's ``n_candidates``
    nearest references by cosine. Returned as the dissimilarity 1 - CSLS/2, nearest first.
    ``exclude_self``: Q is R (leave-one-out on the reference set). ``reference``: R's
    :func:`csls_reference` with at least ``k`` neighbours (and ``n_candidates`` for ``exclude_self``),
    computed once for several calls; by default each call computes it."""
    Qu, Ru = _unit(np.asarray(Q, dtype=np.float64)), _unit(np.asarray(R, dtype=np.float64))
    n = min(n_candidates, len(Ru) - 1)
    if reference is None:
        reference = reference_graph(Ru, max(k, n) if exclude_self else k)
    if reference[1].shape[1] < k or (exclude_self and reference[1].shape[1] < n):
        raise ValueError(f"the reference graph has {reference[1].shape[1]} neighbours; this call needs "
                         f"{max(k, n) if exclude_self else k}")
    if exclude_self:  # the leave-one-out candidates are R's own graph: the same search
        dist, idx = reference[0][:, :n], reference[1][:, :n]
    else:
        dist, idx = knn_graph(Qu, Ru, n_candidates)
    ref_idx = reference[1][:, :k]
    cos = 1.0 - dist ** 2 / 2  # unit vectors: |a - b|^2 = 2 - 2 cos
    r_ref = np.einsum("nd,nkd->n", Ru, Ru[ref_idx]) / k
    r_q = cos[:, :k].mean(axis=1, keepdims=True)
    return _rerank(1.0 - (2 * cos - r_q - r_ref[idx]) / 2, idx)


def knn_predict(dist: np.ndarray, idx: np.ndarray, labels: np.ndarray, k: int, n_classes: int,
                weights: str = "distance") -> np.ndarray:
    """Vote of the k first columns of a sorted graph. ``distance``: weight 1/d, and when a query has
    neighbours at distance 0 only those vote (scikit-learn's rule); ``uniform``: one vote each.
    A tie goes to the lowest class index."""
    d, j = dist[:, :k], idx[:, :k]
    if weights == "uniform":
        w = np.ones_like(d)
    elif weights == "distance":
        with np.errstate(divide="ignore"):
            w = 1.0 / d
        zero = (d <= 0).any(axis=1)
        w[zero] = (d[zero] <= 0).astype(float)
    else:
        raise ValueError(f"weights must be 'distance' or 'uniform', not {weights!r}")
    votes = np.zeros((len(d), n_classes))
    np.add.at(votes, (np.repeat(np.arange(len(d)), k), labels[j].ravel()), w.ravel())
    return votes.argmax(axis=1)


def knn_error(dist, idx, ref_labels, query_labels, k, n_classes, weights="distance") -> np.ndarray:
    """Per-query 0/1 error of the kNN vote (what a paired bootstrap resamples)."""
    return (knn_predict(dist, idx, np.asarray(ref_labels), k, n_classes, weights) != np.asarray(query_labels)).astype(float)


def choose_k(ref_dist: np.ndarray, ref_idx: np.ndarray, ref_labels: np.ndarray, ks, n_classes: int,
             weights: str = "distance") -> tuple[int, dict[int, float]]:
    """The vote size with the lowest leave-one-out error on the reference set (its own graph, self
    left out): the reference labels only, never the queries'. Ties go to the smaller k."""
    errors = {int(kk): float(knn_error(ref_dist, ref_idx, ref_labels, ref_labels, kk, n_classes, weights).mean())
              for kk in ks}
    return min(errors, key=lambda kk: (errors[kk], kk)), errors
