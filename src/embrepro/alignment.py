"""Aligning two embedding spaces with a linear map, with or without paired data.

The chapter "Universal geometry" asks whether two models' embedding spaces share enough structure
that one can be rotated onto the other **without any text known to both**. This module holds the
pieces, written for the book after the procedure of mini-vec2vec (Dar 2025):

1. :class:`Preprocess`: subtract the training mean, optionally reduce to ``k`` dimensions with PCA
   (both fitted on one side's training vectors only), and normalise rows to unit length.
2. :func:`matched_centroids`: k-means on each side, then match the two sets of centroids by a
   quadratic assignment (QAP) of their Gram matrices: a permutation that makes the centroids'
   mutual similarities agree. Several rounds of k-means, each matched on its own, give a set of
   pseudo-parallel *anchors*.
3. :func:`pseudo_targets`: describe every point by its cosines to its side's anchors (a *relative
   representation*), and give each source point the mean of the ``k`` target points whose
   relative representations are most like its own.
4. :func:`procrustes`: the orthogonal map that best sends the source points to their pseudo-targets.
5. :func:`refine`: repeatedly re-pair a sample of source points with the mean of their ``k``
   nearest target points under the current map, fit Procrustes again and average,
   ``W <- (1 - step) W + step W_new``.

:func:`unsupervised_map` chains 2 to 5. The baselines are :func:`random_orthogonal` (the floor) and
:func:`procrustes` on true pairs (the best any orthogonal map can do). :func:`retrieval_metrics`
scores a map on held-out true pairs (cosine to the true target, its rank among all candidates,
top-1), and :func:`bootstrap_anchors` grows a set of parallel anchors from a few known pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Preprocess", "procrustes", "random_orthogonal", "normalise", "match_by_qap", "matched_centroids",
           "relative", "pseudo_targets", "refine", "unsupervised_map", "UnsupervisedMap", "retrieval_metrics",
           "bootstrap_anchors", "mutual_nearest"]


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


@dataclass
class Preprocess:
    """Centre with the training mean, optionally keep the top ``k`` principal directions, normalise."""

    mean: np.ndarray
    components: np.ndarray | None = None  # (k, d): rows are principal directions

    @classmethod
    def fit(cls, X: np.ndarray, k: int | None = None) -> "Preprocess":
        X = np.asarray(X, dtype=np.float64)
        mean = X.mean(axis=0)
        if k is None or k >= X.shape[1]:
            return cls(mean)
        if k < 1:
            raise ValueError(f"k must be positive, not {k}")
        _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
        # fix each direction's sign (largest loading positive) so that the fit is deterministic
        signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
        return cls(mean, (vt * signs[:, None])[:k])

    @property
    def dim(self) -> int:
        return len(self.mean) if self.components is None else self.components.shape[0]

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = np.asarray(X, dtype=np.float64) - self.mean
        if self.components is not None:
            Z = Z @ self.components.T
        return normalise(Z)


def procrustes(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The orthogonal ``W`` minimising ``||X W - Y||_F`` (``W = U V^T`` from the SVD of ``X^T Y``)."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.shape != Y.shape:
        raise ValueError(f"procrustes needs two arrays of one shape, got {X.shape} and {Y.shape}")
    from threadpoolctl import threadpool_limits

    M = X.T @ Y
    with threadpool_limits(1, user_api="blas"):  # a small SVD: threads only add overhead (10x on a busy CPU)
        u, _, vt = np.linalg.svd(M)
    return u @ vt


def random_orthogonal(d: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal ``d x d`` matrix, uniform (Haar) over the orthogonal group."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _centred_gram(C: np.ndarray) -> np.ndarray:
    G = C @ C.T
    H = np.eye(len(C)) - 1.0 / len(C)
    return H @ G @ H


def match_by_qap(CA: np.ndarray, CB: np.ndarray, restarts: int = 10, seed: int = 0) -> np.ndarray:
    """A permutation ``p`` such that ``CB[p]`` matches ``CA`` row by row, found without pairs.

    Maximises ``trace(G_A P G_B P^T)`` over permutations (the centred Gram matrices of the two sets
    agree under the matching) with scipy's 2-opt QAP solver from ``restarts`` random starts,
    keeping the best objective. Returns ``p`` with ``CB[p][i]`` matched to ``CA[i]``.
    """
    from scipy.optimize import quadratic_assignment

    if len(CA) != len(CB):
        raise ValueError("both sets need the same number of centroids")
    GA, GB = _centred_gram(np.asarray(CA, np.float64)), _centred_gram(np.asarray(CB, np.float64))
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        res = quadratic_assignment(GA, GB, method="2opt",
                                   options={"maximize": True, "rng": rng})
        if best is None or res.fun > best.fun:
            best = res
    return np.asarray(best.col_ind)


def matched_centroids(XA: np.ndarray, XB: np.ndarray, *, rounds: int = 10, clusters: int = 20,
                      subsample: int = 5000, restarts: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-parallel anchors: ``rounds`` of k-means on each side, each round's centroids QAP-matched.

    Returns two ``(rounds * clusters, d)`` arrays whose rows correspond. No pair of texts is used.
    """
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    out_a, out_b = [], []
    for r in range(rounds):
        ia = rng.choice(len(XA), min(subsample, len(XA)), replace=False)
        ib = rng.choice(len(XB), min(subsample, len(XB)), replace=False)
        seeds = rng.integers(0, 2**31 - 1, size=3)
        # float32 halves k-means' cost; the centroids only seed the matching
        ca = KMeans(clusters, n_init=1, random_state=int(seeds[0])).fit(
            np.asarray(XA[ia], np.float32)).cluster_centers_.astype(np.float64)
        cb = KMeans(clusters, n_init=1, random_state=int(seeds[1])).fit(
            np.asarray(XB[ib], np.float32)).cluster_centers_.astype(np.float64)
        perm = match_by_qap(ca, cb, restarts=restarts, seed=int(seeds[2]))
        out_a.append(ca)
        out_b.append(cb[perm])
    return np.vstack(out_a), np.vstack(out_b)


def relative(X: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Relative representation: each row's cosines to the anchors (Moschella et al. 2023)."""
    return normalise(X) @ normalise(anchors).T


def _topk_mean(Q: np.ndarray, K: np.ndarray, values: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """For each row of ``Q``, the mean of ``values`` at the ``k`` rows of ``K`` with the largest dot product."""
    out = np.empty((len(Q), values.shape[1]))
    k = min(k, len(K))
    for start in range(0, len(Q), chunk):
        S = Q[start:start + chunk] @ K.T
        idx = np.argpartition(-S, k - 1, axis=1)[:, :k]
        out[start:start + chunk] = values[idx].mean(axis=1)
    return out


def pseudo_targets(XA: np.ndarray, XB: np.ndarray, anchors_a: np.ndarray, anchors_b: np.ndarray,
                   k: int = 50) -> np.ndarray:
    """For each source row, the mean of the ``k`` target rows with the most similar relative representation."""
    RA = normalise(relative(XA, anchors_a) - 0.0)
    RB = normalise(relative(XB, anchors_b))
    return _topk_mean(RA, RB, np.asarray(XB, np.float64), k)


def refine(XA: np.ndarray, XB: np.ndarray, W: np.ndarray, *, iterations: int = 50, sample: int = 1000,
           k: int = 50, step: float = 0.5, seed: int = 0) -> np.ndarray:
    """Iterative closest-points refinement: ``W <- (1 - step) W + step procrustes(sample, matched)``."""
    if not 0 < step <= 1:
        raise ValueError("step must lie in (0, 1]")
    rng = np.random.default_rng(seed)
    XB = np.asarray(XB, np.float64)
    for _ in range(iterations):
        S = np.asarray(XA, np.float64)[rng.choice(len(XA), min(sample, len(XA)), replace=False)]
        matched = _topk_mean(normalise(S @ W), XB, XB, k)
        W = (1 - step) * W + step * procrustes(S, matched)
    return W


@dataclass
class UnsupervisedMap:
    """The result of :func:`unsupervised_map`: the map ``W`` (source -> target) and the stages' maps."""

    W: np.ndarray
    W_initial: np.ndarray
    anchors_a: np.ndarray
    anchors_b: np.ndarray
    stages: dict = field(default_factory=dict)


def unsupervised_map(XA: np.ndarray, XB: np.ndarray, *, rounds: int = 10, clusters: int = 20,
                     subsample: int = 5000, restarts: int = 10, k: int = 50, iterations: int = 50,
                     sample: int = 1000, step: float = 0.5, seed: int = 0) -> UnsupervisedMap:
    """mini-vec2vec's linear procedure on two *unpaired* sets of preprocessed vectors of equal dimension."""
    XA, XB = np.asarray(XA, np.float64), np.asarray(XB, np.float64)
    if XA.shape[1] != XB.shape[1]:
        raise ValueError(f"both sides need one dimension (reduce them first), got {XA.shape[1]} and {XB.shape[1]}")
    ca, cb = matched_centroids(XA, XB, rounds=rounds, clusters=clusters, subsample=subsample,
                               restarts=restarts, seed=seed)
    W0 = procrustes(XA, pseudo_targets(XA, XB, ca, cb, k=k))
    W = refine(XA, XB, W0, iterations=iterations, sample=sample, k=k, step=step, seed=seed + 1)
    return UnsupervisedMap(W, W0, ca, cb)


def retrieval_metrics(P: np.ndarray, Y: np.ndarray, chunk: int = 1024) -> dict[str, np.ndarray]:
    """Score mapped source rows ``P`` against their true targets ``Y`` (row ``i`` belongs to row ``i``).

    Returns per item: ``cosine`` (to the true target), ``rank`` (1 = the true target is the most
    similar of all ``len(Y)`` candidates; a candidate tied with the true target counts as ranked
    above it, so a tie is never a win) and ``top1`` (rank == 1, as 0/1).
    """
    P, Y = normalise(P), normalise(Y)
    if P.shape != Y.shape:
        raise ValueError("P and Y must have the same shape")
    cos = np.einsum("ij,ij->i", P, Y)
    rank = np.empty(len(P), dtype=np.int64)
    for start in range(0, len(P), chunk):
        S = P[start:start + chunk] @ Y.T
        true = cos[start:start + chunk, None]
        ahead = (S >= true - 1e-12).sum(axis=1) - 1  # every candidate at least as similar, minus the true one
        rank[start:start + chunk] = 1 + ahead
    return {"cosine": cos, "rank": rank, "top1": (rank == 1).astype(np.float64)}


def mutual_nearest(RA: np.ndarray, RB: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mutual nearest neighbours between two sets of rows (by dot product): ``(i, j, score)`` arrays."""
    S = RA @ RB.T
    best_b = S.argmax(axis=1)
    best_a = S.argmax(axis=0)
    i = np.flatnonzero(best_a[best_b] == np.arange(len(RA)))
    j = best_b[i]
    return i, j, S[i, j]


def bootstrap_anchors(XA: np.ndarray, XB: np.ndarray, seed_pairs: np.ndarray, *, target: int = 300,
                      per_round: int = 50) -> np.ndarray:
    """Grow a set of parallel anchors from a few known pairs, with no other pairs.

    ``seed_pairs`` is an ``(s, 2)`` array of known parallel rows ``(XA index, XB index)``. Each round
    describes every row by its cosines to the current anchors (relative representations, centred
    and normalised), finds mutual nearest neighbours between the two sides, and adds the
    ``per_round`` most similar new pairs (no row used twice) until ``target`` anchors exist or no
    new pair is found. Returns the ``(n, 2)`` anchor pairs, the seed pairs first.
    """
    pairs = [tuple(map(int, p)) for p in np.asarray(seed_pairs)]
    used_a, used_b = {p[0] for p in pairs}, {p[1] for p in pairs}
    while len(pairs) < target:
        pa, pb = np.array(pairs).T
        RA, RB = relative(XA, XA[pa]), relative(XB, XB[pb])
        RA, RB = normalise(RA - RA.mean(axis=0)), normalise(RB - RB.mean(axis=0))
        i, j, score = mutual_nearest(RA, RB)
        new = [(a, b) for a, b, _ in sorted(zip(i.tolist(), j.tolist(), score.tolist()), key=lambda t: (-t[2], t[0]))
               if a not in used_a and b not in used_b]
        new = new[:min(per_round, target - len(pairs))]
        if not new:
            break
        for a, b in new:
            pairs.append((a, b))
            used_a.add(a)
            used_b.add(b)
    return np.array(pairs, dtype=np.int64)
