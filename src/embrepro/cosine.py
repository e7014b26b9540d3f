"""Cosine similarity of learned embeddings: the linear factorisation X ≈ X A Bᵀ and its gauge freedom.

The chapter "Is cosine similarity really about similarity?" (Steck, Ekanadham & Kallus 2024) uses
these pieces. Notation: ``X`` is an n × m matrix (users × items, documents × terms); ``A`` and ``B``
are m × k; the item embeddings are the rows of ``B``, the user embeddings the rows of ``X A``.

* **Objective 1** (penalty on the product): ``||X - X A Bᵀ||² + λ ||A Bᵀ||²``. With the thin SVD
  ``X = U diag(σ) Vᵀ``, the rank-k minimiser of the product is ``W = V_k diag(g) V_kᵀ`` with
  ``g_i = σ_i² / (σ_i² + λ)``; every ``A = V_k diag(g) D``, ``B = V_k D⁻¹`` with an invertible
  diagonal ``D`` attains it (:func:`objective1_solution`), so the loss cannot choose ``D``.
* **Objective 2** (a penalty on each factor): ``||X - X A Bᵀ||² + λ (||X A||² + ||B||²)``. Its
  minimiser is ``B = V_k diag(s) R``, ``X A = U_k diag(s) R`` with ``s_i = sqrt((σ_i - λ)₊)`` and any
  rotation ``R`` (:func:`objective2_solution`): cosines are unique.

Losses are computed from the Gram matrix ``G = Xᵀ X`` (m × m) so that training never forms an
n × m product (:func:`loss_from_gram`); :func:`train` fits either objective, or Objective 1 with
unit-length item embeddings (the "normalise during training" remedy), by L-BFGS from a random start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _sp

OBJECTIVES = ("product", "factors", "normalised")


# --------------------------------------------------------------------------------------------
# Data: a clustered low-rank simulator
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Simulated:
    """A binary users × items matrix and the item factors that generated it."""

    X: np.ndarray              # n_users x n_items, 0/1 floats
    item_factors: np.ndarray   # n_items x rank (the ground truth)
    clusters: np.ndarray       # n_items, the cluster of each item


def simulate(n_users: int, n_items: int, n_clusters: int = 10, rank: int = 10, spread: float = 0.5,
             density: float = 0.05, seed: int = 0) -> Simulated:
    """Clustered low-rank binary data.

    Items belong to ``n_clusters`` clusters: an item's factor is its cluster's centre (standard
    normal in ``rank`` dimensions) plus ``spread`` times standard normal noise. Users have standard
    normal factors. ``X[u, i] ~ Bernoulli(sigmoid(2 u·v_i / sqrt(rank) + b_i + c))`` with an item
    popularity ``b_i ~ N(0, 0.5²)`` and ``c`` set so that the expected density is about ``density``.
    The ground-truth item similarity is the cosine of the item factors.
    """
    if n_users < 2 or n_items < 2 or n_clusters < 1 or rank < 1:
        raise ValueError("need at least 2 users, 2 items, 1 cluster and rank 1")
    if not 0 < density < 1 or spread < 0:
        raise ValueError("density must lie in (0, 1) and spread must be >= 0")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, rank))
    clusters = rng.integers(0, n_clusters, n_items)
    items = centres[clusters] + spread * rng.standard_normal((n_items, rank))
    users = rng.standard_normal((n_users, rank))
    logits = 2 * users @ items.T / np.sqrt(rank) + 0.5 * rng.standard_normal(n_items)
    # the offset that gives the requested mean probability (bisection on a monotone function)
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (1 / (1 + np.exp(-(logits + mid)))).mean() < density:
            lo = mid
        else:
            hi = mid
    p = 1 / (1 + np.exp(-(logits + (lo + hi) / 2)))
    X = (rng.random(p.shape) < p).astype(np.float64)
    return Simulated(X, items, clusters)


# --------------------------------------------------------------------------------------------
# Closed forms and losses
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spectrum:
    """The top-k singular values ``sigma`` (descending) and right singular vectors ``V`` (m x k) of X."""

    sigma: np.ndarray
    V: np.ndarray


def spectrum(X, k: int) -> Spectrum:
    """Top-k right singular vectors and singular values of ``X`` (dense or scipy sparse), via XᵀX.

    Eigen-decomposes the m x m Gram matrix (exact, deterministic); each vector's sign is fixed so
    that its largest-magnitude entry is positive.
    """
    G = gram(X)
    m = G.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k must lie in [1, {m}], got {k}")
    evals, evecs = np.linalg.eigh(G)
    order = np.argsort(evals)[::-1][:k]
    evals, V = np.clip(evals[order], 0, None), evecs[:, order]
    signs = np.sign(V[np.abs(V).argmax(axis=0), np.arange(k)])
    return Spectrum(np.sqrt(evals), V * signs)


def gram(X) -> np.ndarray:
    """``Xᵀ X`` as a dense float64 array (X dense or scipy sparse)."""
    G = X.T @ X
    G = G.toarray() if hasattr(G, "toarray") else np.asarray(G)
    return np.asarray(G, dtype=np.float64)


def objective1_solution(spec: Spectrum, lam: float, d=None) -> tuple[np.ndarray, np.ndarray]:
    """A minimiser ``(A, B)`` of Objective 1: ``A = V diag(g) D``, ``B = V D⁻¹`` (``d`` = diag of D, default 1)."""
    g = spec.sigma ** 2 / (spec.sigma ** 2 + lam)
    d = np.ones_like(spec.sigma) if d is None else np.asarray(d, dtype=np.float64)
    if d.shape != spec.sigma.shape or np.any(d == 0):
        raise ValueError("d must be a non-zero vector with one entry per dimension")
    return spec.V * (g * d), spec.V / d


def objective2_solution(spec: Spectrum, lam: float, rotation=None) -> tuple[np.ndarray, np.ndarray]:
    """A minimiser ``(A, B)`` of Objective 2: ``B = V diag(s) R``, ``A = V diag(s / σ) R``, s = sqrt((σ - λ)₊)."""
    s = np.sqrt(np.clip(spec.sigma - lam, 0, None))
    R = np.eye(len(s)) if rotation is None else np.asarray(rotation, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(spec.sigma > 0, s / spec.sigma, 0.0)
    return (spec.V * a) @ R, (spec.V * s) @ R


def loss_from_gram(G: np.ndarray, A: np.ndarray, B: np.ndarray, lam: float, objective: str = "product") -> float:
    """The loss of ``(A, B)`` from ``G = XᵀX``, without forming X A Bᵀ.

    ``||X - XABᵀ||² = tr G - 2 <GA, B> + <AᵀGA, BᵀB>``; the penalty is ``λ <AᵀA, BᵀB>`` (=
    ``λ||ABᵀ||²``, "product"), ``λ (tr AᵀGA + ||B||²)`` ("factors"), or, for "normalised", the product
    penalty with B's rows scaled to unit length first.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "normalised":
        B = B / np.linalg.norm(B, axis=1, keepdims=True)
    GA = G @ A
    AtGA, BtB = A.T @ GA, B.T @ B
    fit = np.trace(G) - 2 * np.sum(GA * B) + np.sum(AtGA * BtB)
    if objective == "factors":
        return float(fit + lam * (np.trace(AtGA) + np.trace(BtB)))
    return float(fit + lam * np.sum((A.T @ A) * BtB))


# --------------------------------------------------------------------------------------------
# Similarities and their agreement
# --------------------------------------------------------------------------------------------

def cosine_matrix(E: np.ndarray) -> np.ndarray:
    """Row-by-row cosine similarities of ``E`` (a zero row has cosine 0 with everything)."""
    E = np.asarray(E, dtype=np.float64)
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    U = np.divide(E, norms, out=np.zeros_like(E), where=norms > 0)
    return U @ U.T


def upper(S: np.ndarray) -> np.ndarray:
    """The strictly upper triangle of a square matrix, as a vector (each unordered pair once)."""
    S = np.asarray(S)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"need a square matrix, got shape {S.shape}")
    return S[np.triu_indices(S.shape[0], 1)]


def agreement(S1: np.ndarray, S2: np.ndarray) -> float:
    """Spearman correlation (in [-1, 1]) between two similarity matrices over all item pairs."""
    return float(_sp.spearmanr(upper(S1), upper(S2)).statistic)


def neighbours(S: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most similar other items (ties broken by index), shape (m, k)."""
    S = np.array(S, dtype=np.float64)
    m = S.shape[0]
    if not 1 <= k < m:
        raise ValueError(f"k must lie in [1, {m - 1}], got {k}")
    np.fill_diagonal(S, -np.inf)
    order = np.argsort(-S, axis=1, kind="stable")
    return order[:, :k]


def overlap_at_k(S1: np.ndarray, S2: np.ndarray, k: int) -> np.ndarray:
    """Per item, the fraction of its k nearest neighbours under ``S1`` that are also among them under ``S2``."""
    n1, n2 = neighbours(S1, k), neighbours(S2, k)
    return np.array([len(set(a) & set(b)) / k for a, b in zip(n1, n2)])


def knn_correct(E: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Leave-one-out k-NN by cosine: for each query row, whether the majority label of its k nearest
    other rows (ties to the smallest label) equals its own label (0/1 per query)."""
    E = np.asarray(E, dtype=np.float64)
    labels = np.asarray(labels)
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    U = np.divide(E, norms, out=np.zeros_like(E), where=norms > 0)
    queries = np.asarray(queries)
    sims = U[queries] @ U.T
    sims[np.arange(len(queries)), queries] = -np.inf
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    n_classes = int(labels.max()) + 1
    votes = np.stack([np.bincount(labels[row], minlength=n_classes) for row in top])
    return (votes.argmax(axis=1) == labels[queries]).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Gradient training
# --------------------------------------------------------------------------------------------

@dataclass
class Trained:
    A: np.ndarray
    B: np.ndarray
    losses: list[float]

    @property
    def items(self) -> np.ndarray:
        """The item embeddings (B's rows; unit length for the "normalised" objective)."""
        return self.B


def train(G: np.ndarray, k: int, lam: float, objective: str = "product", seed: int = 0,
          max_iter: int = 1000, init_scale: float = 1.0) -> Trained:
    """Fit ``(A, B)`` by full-batch L-BFGS (strong Wolfe line search, float64, CPU) from a random start.

    The start: entries of A and B drawn from ``N(0, (init_scale / sqrt(m))²)`` with
    ``numpy.random.default_rng(seed)``. The loss (that of :func:`loss_from_gram`) is divided by
    ``tr G`` for the optimiser, which leaves its minimisers unchanged. For "normalised", B's rows are
    divided by their length inside the loss and the returned B is the normalised one. ``losses``
    holds the loss at every evaluation. The problem is small (m x k parameters), so it runs on one
    torch thread whatever the caller's setting (restored afterwards): on a loaded machine, a second
    thread made each evaluation an order of magnitude slower, and one thread keeps the result
    independent of the thread count.
    """
    import torch

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if max_iter < 1 or init_scale <= 0:
        raise ValueError("max_iter and init_scale must be positive")
    m = G.shape[0]
    rng = np.random.default_rng(seed)
    scale = init_scale / np.sqrt(m)
    A = torch.tensor(scale * rng.standard_normal((m, k)), requires_grad=True)
    B = torch.tensor(scale * rng.standard_normal((m, k)), requires_grad=True)
    Gt = torch.tensor(G, dtype=torch.float64)
    trG = float(np.trace(G))
    opt = torch.optim.LBFGS([A, B], lr=1, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-15)
    losses: list[float] = []

    def closure():
        opt.zero_grad()
        Bn = B / B.norm(dim=1, keepdim=True) if objective == "normalised" else B
        GA = Gt @ A
        AtGA, BtB = A.T @ GA, Bn.T @ Bn
        fit = trG - 2 * (GA * Bn).sum() + (AtGA * BtB).sum()
        pen = (torch.trace(AtGA) + torch.trace(BtB)) if objective == "factors" else ((A.T @ A) * BtB).sum()
        loss = (fit + lam * pen) / trG
        loss.backward()
        losses.append(float(loss.detach()) * trG)
        return loss

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt.step(closure)
    finally:
        torch.set_num_threads(previous)
    A_out, B_out = A.detach().numpy().copy(), B.detach().numpy().copy()
    if objective == "normalised":
        B_out = B_out / np.linalg.norm(B_out, axis=1, keepdims=True)
    return Trained(A_out, B_out, losses)


def excess(loss: float, optimum: float, G: np.ndarray) -> float:
    """How much of the achievable loss reduction is still missing: ``(loss - optimum) / (tr G - optimum)``.

    ``tr G`` is the loss at A = B = 0, so 0 means the optimum is reached and 1 means no progress.
    """
    return float((loss - optimum) / (np.trace(G) - optimum))
