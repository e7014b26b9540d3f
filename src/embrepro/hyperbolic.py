"""Embedding a hierarchy: the Poincaré ball, Riemannian SGD and reconstruction metrics.

The model of Nickel & Kiela (2017): one point per node of a hierarchy (a transitive closure of
"is-a" pairs), trained so that each node is closer to its ancestors than to the nodes that are
not its ancestors. Two geometries share all the code:

* ``poincare``: points in the open unit ball with the hyperbolic distance
  ``arcosh(1 + 2 |u - v|^2 / ((1 - |u|^2)(1 - |v|^2)))``, trained with Riemannian SGD: the
  Euclidean gradient is rescaled by ``(1 - |x|^2)^2 / 4`` (the inverse of the ball's metric) and a
  point that would leave the ball is pulled back to norm ``1 - eps``.
* ``euclidean``: points anywhere in R^d with the squared Euclidean distance and plain SGD, the
  baseline of the paper's official code (``hype/euclidean.py``, with no norm bound).

Training follows the official code: for a pair (u, v) and ``negatives`` nodes v' that are not
ancestors of u, a softmax over minus the distances, loss ``d(u, v) + log sum exp(-d(u, .))``;
an initial *burn-in* of a few epochs with a smaller learning rate whose negatives are drawn in
proportion to how often a node is an ancestor; initial points uniform in ``[-0.001, 0.001]``.
The loss is summed over a batch, so the learning rate is per training pair, and a node's gradient
is divided by the number of times the node occurs in the batch (the official script updates after
every 10 pairs, where repeats are rare; with batches of hundreds of pairs the root, an ancestor in
a fifth of all pairs, would otherwise take steps dozens of times larger than a leaf).
The loss's gradient is written out by hand (:func:`pair_loss_and_gradient`): the same numbers as
autograd up to float rounding, 1.6 times faster at the book's batch shape.

Several runs (seeds x learning rates) of one geometry and dimension are trained side by side in
one tensor: the runs never touch each other's parameters, and all learning rates of a seed see
the same pairs and negatives, which makes the learning-rate comparison a paired one.

Reconstruction (the paper's "train = test" task) ranks, for every node with ancestors, all other
nodes by distance: *mean rank* is 1 + the mean number of non-ancestors closer than an ancestor
(1 is perfect), *MAP* the mean over nodes of the average precision of that ranking.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

EPS = 1e-5
MANIFOLDS = ("poincare", "euclidean")


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------

def poincare_distance(u: torch.Tensor, v: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Hyperbolic distance between points of the Poincaré ball (last dimension = coordinates)."""
    sq_u = (u * u).sum(-1).clamp(0, 1 - eps)
    sq_v = (v * v).sum(-1).clamp(0, 1 - eps)
    sq_diff = ((u - v) ** 2).sum(-1)
    x = 1 + 2 * sq_diff / ((1 - sq_u) * (1 - sq_v))
    # arcosh(x) = log(x + sqrt(x^2 - 1)); the clamp keeps the gradient finite (zero) at u = v
    return torch.log(x + torch.sqrt((x * x - 1).clamp_min(1e-15)))


def squared_euclidean(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance, the official code's Euclidean baseline."""
    return ((u - v) ** 2).sum(-1)


def distance(manifold: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if manifold == "poincare":
        return poincare_distance(u, v)
    if manifold == "euclidean":
        return squared_euclidean(u, v)
    raise ValueError(f"manifold must be one of {MANIFOLDS}, not {manifold!r}")


def pair_loss_and_gradient(manifold: str, W: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor,
                           eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss of a batch and its Euclidean gradient, written out by hand.

    ``W`` holds the points, one row per (seed, node) with one point per learning rate:
    (rows, L, d). ``rows`` (S, B, 2 + K) indexes W: for each pair, the node u, then its ancestor v,
    then K negatives; ``mask`` (S, B, 1 + K) says which candidates count (v always does). The loss
    of a pair is ``d(u, v) + log sum exp(-d(u, c))`` over the counted candidates c, for every
    learning rate: (S, B, L). The gradient is that of the loss summed over the batch, with respect
    to W (a tensor shaped like W). It is the gradient autograd gives for the same forward pass
    (``distance``, a masked log-sum-exp, an index_select), equal up to float rounding (see
    tests/test_hyperbolic.py), and 1.6 times faster than autograd at the book's batch shape: fewer
    passes over the (S, B, 1 + K, L, d) tensor of gathered points, and no autograd graph.
    """
    if manifold not in MANIFOLDS:
        raise ValueError(f"manifold must be one of {MANIFOLDS}, not {manifold!r}")
    S, B, R = rows.shape
    L, dim = W.shape[1], W.shape[2]
    flat = rows.reshape(-1)
    points = W.index_select(0, flat).view(S, B, R, L, dim)
    u, c = points[:, :, :1], points[:, :, 1:]                       # (S, B, 1, L, d), (S, B, J, L, d)
    diff = u - c
    delta = (diff * diff).sum(-1)                                    # |u - c|^2: (S, B, J, L)
    if manifold == "poincare":
        sq = (W * W).sum(-1).index_select(0, flat).view(S, B, R, L)  # |x|^2 of every gathered row
        sq_u_raw, sq_c_raw = sq[:, :, :1], sq[:, :, 1:]
        a = 1 - sq_u_raw.clamp(0, 1 - eps)
        b = 1 - sq_c_raw.clamp(0, 1 - eps)
        den = a * b
        x = 1 + 2 * delta / den
        arg = x * x - 1
        root = torch.sqrt(arg.clamp_min(1e-15))
        d = torch.log(x + root)                                      # arcosh(x), as poincare_distance
    else:
        d = delta
    logits = (-d).masked_fill(~mask.unsqueeze(-1), float("-inf"))
    lse = torch.logsumexp(logits, dim=2)                             # (S, B, L)
    loss = d[:, :, 0] + lse
    g = -torch.exp(logits - lse.unsqueeze(2))                       # d loss / d d(u, c): minus the softmax ...
    g[:, :, 0] += 1                                                  # ... plus one for the positive
    if manifold == "poincare":
        # d arcosh / dx is 1 / sqrt(x^2 - 1); where the clamp holds (u = c) autograd's value is 1 / (x + root)
        gx = g * torch.where(arg >= 1e-15, 1 / root, 1 / (x + root))
        g_delta = gx * 2 / den
        g_den = gx * 2 * delta / (den * den)                         # minus d loss / d den
        inside_u = (sq_u_raw >= 0) & (sq_u_raw <= 1 - eps)           # where the clamp passes a gradient
        inside_c = (sq_c_raw >= 0) & (sq_c_raw <= 1 - eps)
        g_sq_u = (g_den * b * inside_u).sum(2, keepdim=True)         # d loss / d |u|^2 (den falls as |u|^2 grows)
        g_sq_c = g_den * a * inside_c
    else:
        g_delta = g
    step = (2 * g_delta).unsqueeze(-1) * diff                        # d loss / d u through |u - c|^2
    grad_u = step.sum(2, keepdim=True)
    grad_c = -step
    if manifold == "poincare":
        grad_u = grad_u + (2 * g_sq_u).unsqueeze(-1) * u
        grad_c = grad_c + (2 * g_sq_c).unsqueeze(-1) * c
    grad = torch.zeros_like(W)
    grad.index_add_(0, rows[:, :, 0].reshape(-1), grad_u.reshape(-1, L, dim))
    grad.index_add_(0, rows[:, :, 1:].reshape(-1), grad_c.reshape(-1, L, dim))
    return loss, grad


def project_to_ball(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Pull every point with norm >= 1 - eps back onto the sphere of radius 1 - eps (in place)."""
    norms = x.norm(dim=-1, keepdim=True)
    x.mul_(torch.where(norms >= 1 - eps, (1 - eps) / norms.clamp_min(1e-15), torch.ones_like(norms)))
    return x


def riemannian_gradient(x: torch.Tensor, euclidean_grad: torch.Tensor) -> torch.Tensor:
    """The Poincaré ball's Riemannian gradient: the Euclidean one times ``(1 - |x|^2)^2 / 4``."""
    return euclidean_grad * ((1 - (x * x).sum(-1, keepdim=True)) ** 2 / 4)


def rsgd_step(x: torch.Tensor, euclidean_grad: torch.Tensor, lr) -> torch.Tensor:
    """One Riemannian SGD step in the ball, in place: rescale, step, project back inside."""
    x.sub_(lr * riemannian_gradient(x, euclidean_grad))
    return project_to_ball(x)


def sgd_step(x: torch.Tensor, euclidean_grad: torch.Tensor, lr) -> torch.Tensor:
    """The Euclidean baseline's step, in place."""
    return x.sub_(lr * euclidean_grad)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    """How to train one geometry at one dimension; ``lrs`` x ``seeds`` runs side by side."""

    manifold: str
    dim: int
    lrs: Sequence[float]
    seeds: Sequence[int]
    epochs: int = 300
    negatives: int = 50
    batch_size: int = 10
    burnin: int = 20            # epochs at lr * burnin_factor, negatives drawn by frequency
    burnin_factor: float = 0.1
    average_repeats: bool = True  # divide a row's gradient by its number of uses in the batch
    init_scale: float = 1e-3
    dtype: torch.dtype = torch.float64
    device: str = "cpu"

    def __post_init__(self):
        if self.manifold not in MANIFOLDS:
            raise ValueError(f"manifold must be one of {MANIFOLDS}, not {self.manifold!r}")


@dataclass
class TrainResult:
    config: TrainConfig
    weights: np.ndarray          # (seeds, lrs, nodes, dim)
    loss: np.ndarray             # (epochs, seeds, lrs): mean loss per pair
    seconds: float               # wall-clock training time
    cpu_seconds: float = 0.0     # CPU time of this process while training (unaffected by other load)
    pairs_seen: int = 0

    def embedding(self, seed_index: int = 0, lr_index: int = 0) -> np.ndarray:
        return self.weights[seed_index, lr_index]


class NegativeSampler:
    """Draws nodes that are not ancestors of a given node (nor the node itself).

    Candidates are drawn uniformly, or with ``by_frequency`` in proportion to (1 + the number of
    times a node is an ancestor) ** 0.75, as in the official burn-in; those that hit an ancestor
    are drawn again, up to ``tries`` times, and any still invalid are flagged in the returned mask.
    Everything stays on the device of ``edges``. Whether (node, candidate) is a pair is looked up in
    an n x n table of booleans when it has at most ``DENSE_PAIRS`` cells (the mammals), else by
    binary search in the sorted pair keys (the nouns); both give the same answer.
    """

    DENSE_PAIRS = 64_000_000  # 64 MB of booleans

    def __init__(self, edges: torch.Tensor, n_nodes: int, tries: int = 10):
        self.n = n_nodes
        self.tries = tries
        self.keys = torch.unique(edges[:, 0] * n_nodes + edges[:, 1])  # sorted
        self.table = None
        if n_nodes * n_nodes <= self.DENSE_PAIRS:
            self.table = torch.zeros(n_nodes * n_nodes, dtype=torch.bool, device=edges.device)
            self.table[self.keys] = True
            self.table[torch.arange(n_nodes, device=edges.device) * (n_nodes + 1)] = True  # the node itself
        counts = torch.bincount(edges[:, 1], minlength=n_nodes).double() + 1
        self.frequency = counts ** 0.75
        self.device = edges.device

    def _invalid(self, u: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        keys = u.unsqueeze(-1) * self.n + c
        if self.table is not None:
            return self.table[keys]
        pos = torch.searchsorted(self.keys, keys).clamp_max(len(self.keys) - 1)
        return (self.keys[pos] == keys) | (c == u.unsqueeze(-1))

    def sample(self, u: torch.Tensor, k: int, generator: torch.Generator, by_frequency: bool = False):
        def draw(shape):
            if by_frequency:
                flat = torch.multinomial(self.frequency, int(np.prod(shape)), replacement=True, generator=generator)
                return flat.view(shape)
            return torch.randint(0, self.n, shape, generator=generator, device=self.device)

        c = draw((*u.shape, k))
        bad = self._invalid(u, c)
        for _ in range(self.tries):
            if not bad.any():
                break
            c[bad] = draw((int(bad.sum()),))
            bad = self._invalid(u, c)
        return c, ~bad


def train(edges: np.ndarray, n_nodes: int, config: TrainConfig, progress: bool = False) -> TrainResult:
    """Train ``len(seeds) x len(lrs)`` embeddings of the hierarchy given by (child, ancestor) ``edges``."""
    from tqdm.auto import tqdm

    cfg = config
    dev, S, L = torch.device(cfg.device), len(cfg.seeds), len(cfg.lrs)
    edges_t = torch.as_tensor(np.asarray(edges), dtype=torch.long, device=dev)
    sampler = NegativeSampler(edges_t, n_nodes)
    # Initial points come from each seed's own generator (every learning rate of a seed starts
    # from the same points); the pair order and the negatives from one generator for the group.
    init = torch.stack([
        (torch.rand(n_nodes, 1, cfg.dim, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
         * 2 - 1).expand(n_nodes, L, cfg.dim) * cfg.init_scale for s in cfg.seeds])
    gen = torch.Generator(device=dev).manual_seed(1_000_003 * int(cfg.seeds[0]) + S)
    # Parameters as one table with a row per (seed, node), holding every lr's point: one row
    # gather serves all learning rates, and its gradient is a fast index_add.
    W = init.reshape(S * n_nodes, L, cfg.dim).to(dev, cfg.dtype)
    lrs = torch.tensor(list(cfg.lrs), dtype=cfg.dtype, device=dev).view(1, L, 1)
    row_offset = (torch.arange(S, device=dev) * n_nodes).view(S, 1)
    step = rsgd_step if cfg.manifold == "poincare" else sgd_step
    E = len(edges_t)
    n_batches = math.ceil(E / cfg.batch_size)
    history = np.zeros((cfg.epochs, S, L))
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in tqdm(range(cfg.epochs), desc=f"{cfg.manifold} d={cfg.dim}", disable=not progress, leave=False):
        burnin = epoch < cfg.burnin
        lr = lrs * (cfg.burnin_factor if burnin else 1.0)
        order = torch.argsort(torch.rand(S, E, generator=gen, device=dev), dim=1)       # (S, E)
        epoch_loss = torch.zeros(S, L, dtype=torch.float64, device=dev)
        for b in range(n_batches):
            batch = edges_t[order[:, b * cfg.batch_size:(b + 1) * cfg.batch_size]]       # (S, B, 2)
            u, v = batch[..., 0], batch[..., 1]
            negs, valid = sampler.sample(u, cfg.negatives, gen, by_frequency=burnin)   # (S, B, K)
            candidates = torch.cat([v.unsqueeze(-1), negs], -1)                       # (S, B, 1 + K)
            mask = torch.cat([torch.ones_like(v, dtype=torch.bool).unsqueeze(-1), valid], -1)
            rows = torch.cat([u.unsqueeze(-1), candidates], -1) + row_offset.unsqueeze(-1)  # (S, B, 2 + K)
            loss, grad = pair_loss_and_gradient(cfg.manifold, W, rows, mask)  # (S, B, L), like W
            if cfg.average_repeats:
                uses = torch.bincount(rows.reshape(-1), minlength=S * n_nodes).clamp_min(1)
                grad.div_(uses.to(cfg.dtype).view(-1, 1, 1))
            step(W, grad, lr)
            epoch_loss += loss.sum(1).double()
        history[epoch] = (epoch_loss / E).cpu().numpy()
        if not np.isfinite(history[epoch]).all():
            # a learning rate too large for this geometry: keep going, the run will score badly
            W.nan_to_num_(0.0, 0.0, 0.0)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    weights = W.view(S, n_nodes, L, cfg.dim).permute(0, 2, 1, 3).cpu().double().numpy()
    return TrainResult(cfg, weights, history, seconds, cpu_seconds, pairs_seen=E * cfg.epochs * S * L)


# --------------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------------

def pairwise_distances(manifold: str, rows: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Distances (len(rows), len(points)) under the geometry's distance."""
    sq_diff = torch.cdist(rows, points, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    if manifold == "euclidean":
        return sq_diff
    sq_r = (rows * rows).sum(-1, keepdim=True).clamp(0, 1 - EPS)
    sq_p = (points * points).sum(-1).clamp(0, 1 - EPS).unsqueeze(0)
    x = 1 + 2 * sq_diff / ((1 - sq_r) * (1 - sq_p))
    return torch.acosh(x.clamp_min(1.0))


def reconstruction(edges: np.ndarray, embedding: np.ndarray, manifold: str, *, nodes: np.ndarray | None = None,
                   chunk: int = 256, device: str = "cpu", ignore: np.ndarray | None = None,
                   per_node: bool = False, scorer=None) -> dict:
    """Mean rank and MAP of the (child, ancestor) ``edges`` under an embedding (rows = nodes).

    For every node with at least one ancestor (or those in ``nodes``), all other nodes are sorted
    by distance; an ancestor's rank is 1 + the number of non-ancestors ahead of it, and the node's
    average precision is the mean, over its ancestors, of the share of ancestors among the nodes up
    to that one (scikit-learn's ``average_precision_score`` when there are no ties). ``chunk``
    source nodes are scored at a time.

    Optional: ``ignore`` holds (node, other) pairs that take no part in ``node``'s ranking, neither
    as positives nor as negatives (the true links that are not being tested, in link prediction:
    see :func:`link_prediction`); ``per_node=True`` adds ``node_ids`` and ``node_ap`` (each scored
    node's average precision); ``scorer``, a function from a tensor of source indices to their
    (len(sources), n) distances, replaces the embedding's distance (for a control that ranks by
    something else; ``embedding`` then only gives the number of nodes).
    """
    edges = np.asarray(edges)
    points = torch.as_tensor(np.asarray(embedding), dtype=torch.float64, device=device)
    n = len(points)
    order = np.argsort(edges[:, 0], kind="stable")
    children, parents = edges[order, 0], edges[order, 1]
    sources = np.unique(children) if nodes is None else np.asarray(nodes)
    starts = np.searchsorted(children, sources)
    ends = np.searchsorted(children, sources, side="right")
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=np.int64).reshape(-1, 2)
        ignore = ignore[np.argsort(ignore[:, 0], kind="stable")]
    rank_sum, rank_count, ap_sum, node_ap = 0.0, 0, 0.0, []
    for lo in range(0, len(sources), chunk):
        src = sources[lo:lo + chunk]
        m = len(src)
        src_t = torch.as_tensor(src, device=device)
        if scorer is not None:
            dist = scorer(src_t).to(device=device, dtype=torch.float64).clone()
        else:
            dist = pairwise_distances(manifold, points[src_t], points)
        dist[torch.arange(m, device=device), src_t] = float("inf")
        if ignore is not None and len(ignore):
            # ignored pairs go to the end of the ranking, behind every positive (which stay finite)
            lo_i, hi_i = np.searchsorted(ignore[:, 0], src), np.searchsorted(ignore[:, 0], src, side="right")
            irows = np.repeat(np.arange(m), hi_i - lo_i)
            icols = np.concatenate([ignore[a:b, 1] for a, b in zip(lo_i, hi_i)]) if len(irows) else np.zeros(0, np.int64)
            dist[torch.as_tensor(irows, device=device), torch.as_tensor(icols, device=device)] = float("inf")
        rows = np.repeat(np.arange(m), ends[lo:lo + chunk] - starts[lo:lo + chunk])
        cols = np.concatenate([parents[s:e] for s, e in zip(starts[lo:lo + chunk], ends[lo:lo + chunk])])
        positive = torch.zeros(m, n, dtype=torch.bool, device=device)
        positive[torch.as_tensor(rows, device=device), torch.as_tensor(cols, device=device)] = True
        hit = positive.gather(1, dist.argsort(dim=1))                # ancestors, in distance order
        seen = hit.cumsum(1)                                         # ancestors up to each position
        position = torch.arange(1, n + 1, device=device).expand(m, n)
        ahead = (position - seen)[hit]                               # non-ancestors ahead, per ancestor
        rank_sum += float(ahead.sum() + ahead.numel())
        rank_count += ahead.numel()
        precision = torch.where(hit, seen.double() / position, torch.zeros((), dtype=torch.float64, device=device))
        ap = precision.sum(1) / hit.sum(1)
        ap_sum += float(ap.sum())
        node_ap.append(ap.cpu().numpy())
    out = {"mean_rank": rank_sum / rank_count, "map": ap_sum / len(sources), "nodes": int(len(sources)),
           "pairs": int(rank_count)}
    if per_node:
        out["node_ids"] = np.asarray(sources)
        out["node_ap"] = np.concatenate(node_ap) if node_ap else np.zeros(0)
    return out


# --------------------------------------------------------------------------------------------
# Link prediction: held-out is-a pairs
# --------------------------------------------------------------------------------------------

def split_links(edges: np.ndarray, share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hold out pairs of a closure for link prediction: ``(train, dev, test)`` edge arrays.

    As in the paper's link-prediction task, a held-out pair never involves a root (a node with no
    ancestor of its own) nor a leaf (a node that is nobody's ancestor): pairs whose ancestor is a
    root would be trivial to predict, and a leaf has nothing but its own pairs to place it. Of the
    pairs that qualify, ``round(share * count)`` are drawn at random (``seed``); the first half
    (rounded down) is the dev part, the rest the test part. Every node keeps at least its pairs to
    the roots, so none disappears from training. Each part keeps the rows' original order.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    is_ancestor = np.isin(edges[:, 0], edges[:, 1])                    # the child has descendants
    has_parent = np.isin(edges[:, 1], edges[:, 0])                     # the ancestor is not a root
    eligible = np.flatnonzero(is_ancestor & has_parent)
    held = np.random.default_rng(seed).permutation(eligible)[:round(share * len(eligible))]
    dev, test = np.sort(held[:len(held) // 2]), np.sort(held[len(held) // 2:])
    train = np.setdiff1d(np.arange(len(edges)), held)
    return edges[train], edges[dev], edges[test]


def link_prediction(held_out: np.ndarray, edges: np.ndarray, embedding: np.ndarray, manifold: str, **kwargs) -> dict:
    """Mean rank and MAP of held-out pairs, ranked against the true non-ancestors only.

    For each node with a held-out pair, its held-out ancestors are the positives; its other true
    ancestors (the pairs of ``edges``, the whole closure, that are not held out) are left out of the
    ranking, so that an embedding is not penalised for ranking a known ancestor first (the
    "filtered" setting); every other node is a negative. Keyword arguments go to
    :func:`reconstruction`.
    """
    held_out = np.asarray(held_out, dtype=np.int64).reshape(-1, 2)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    n = int(max(edges.max(initial=0), held_out.max(initial=0))) + 1
    held_keys = held_out[:, 0] * n + held_out[:, 1]
    known = edges[~np.isin(edges[:, 0] * n + edges[:, 1], held_keys)]
    return reconstruction(held_out, embedding, manifold, ignore=known, **kwargs)


def best_learning_rate(results, score: str = "MAP", groups: Sequence[str] = ("geometry", "dim")):
    """One learning rate per group: the one with the best mean ``score`` over seeds (on dev data).

    ``results`` has one row per run with the ``groups`` columns, ``lr`` and ``score`` (higher is
    better; a missing or non-finite score, a diverged run, counts as the worst). Ties go to the
    smaller rate. Returns one row per group: the groups, ``lr`` and the mean score (``score``).
    """
    import pandas as pd

    missing = {*groups, "lr", score} - set(results.columns)
    if missing:
        raise ValueError(f"best_learning_rate needs the columns {sorted(missing)}")
    rows = []
    for key, group in results.groupby(list(groups), sort=True):
        finite = group[score].where(np.isfinite(group[score].astype(float)), -np.inf)
        means = finite.groupby(group["lr"]).mean().sort_index()
        best = int(np.argmax(means.to_numpy()))
        rows.append({**dict(zip(groups, key if isinstance(key, tuple) else (key,))),
                     "lr": float(means.index[best]), score: float(means.iloc[best])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Tuning without selection bias, and a convergence criterion
# --------------------------------------------------------------------------------------------

def select_learning_rates(results, score: str = "MAP", groups: Sequence[str] = ("geometry", "dim")):
    """Keep one learning rate per seed, chosen on the *other* seeds (leave one seed out).

    ``results`` is a table with one row per run: the ``groups`` columns, ``lr``, ``seed`` and
    ``score`` (higher is better). For every group and every seed ``s``, the learning rate with the
    best mean ``score`` over the seeds other than ``s`` is kept, and ``s``'s own row at that rate is
    returned. A seed's kept score therefore never took part in choosing its learning rate, so the
    mean over seeds is not inflated by picking the luckiest rate (the winner's curse) and the
    seeds stay independent for a t-interval. Ties go to the smaller rate. With a single seed there
    is nothing to hold out: its own score chooses, and ``held_out`` is False.

    Returns the kept rows (same columns) plus ``held_out`` (bool), sorted by groups and seed.
    """
    import pandas as pd

    needed = {*groups, "lr", "seed", score}
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"select_learning_rates needs the columns {sorted(missing)}")
    if results.duplicated([*groups, "lr", "seed"]).any():
        raise ValueError("one row per group, learning rate and seed expected")
    kept = []
    for _, group in results.groupby(list(groups), sort=True):
        seeds = sorted(group["seed"].unique())
        for s in seeds:
            others = group[group["seed"] != s] if len(seeds) > 1 else group
            means = others.groupby("lr")[score].mean().sort_index()
            means = means.fillna(-np.inf)
            lr = means.index[int(np.argmax(means.to_numpy()))]
            row = group[(group["seed"] == s) & (group["lr"] == lr)]
            if len(row) != 1:
                raise ValueError(f"seed {s} has no run at learning rate {lr}")
            kept.append(row.assign(held_out=len(seeds) > 1))
    return pd.concat(kept).sort_values([*groups, "seed"]).reset_index(drop=True)


def loss_plateau(loss: Sequence[float], share: float = 0.1) -> float:
    """How much the training loss still fell at the end of a run, relative to its final level.

    ``loss`` is the mean loss per pair of each epoch. With ``w = max(1, round(share * epochs))``,
    returns ``(mean of the w epochs before the last w - mean of the last w) / mean of the last w``:
    0.05 means the loss fell by 5% over the last tenth of training; a value near 0 (or negative)
    means it has levelled off. Non-finite losses (a diverged run) give ``inf``.
    """
    x = np.asarray(loss, dtype=np.float64)
    if x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need the loss of at least 2 epochs, got shape {x.shape}")
    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}")
    if not np.all(np.isfinite(x)):
        return math.inf
    w = max(1, round(share * len(x)))
    last, before = x[-w:].mean(), x[-2 * w:-w].mean()
    return float((before - last) / abs(last)) if last != 0 else math.inf
