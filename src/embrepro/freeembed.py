"""Free embeddings: how many documents can a d-dimensional space rank in every top-k way?

The "free embedding" experiment of Weller et al. (2025, "On the Theoretical Limitations of
Embedding-Based Retrieval") takes the most favourable case for a single-vector retriever: no
encoder at all. Each of ``n`` documents and each query is a free unit vector in ``R^d``, and there
is one query for every ``k``-subset of the documents (``C(n, k)`` queries), whose top ``k``
documents by dot product must be exactly that subset. The vectors are optimised directly with Adam
on a full-batch InfoNCE loss (temperature 0.1, every document a negative), renormalised after each
step. The *critical n* of a dimension ``d`` is the largest ``n`` for which the optimiser reaches
100% top-k accuracy; the official script finds it by galloping, then binary search over ``n``, then
a sweep of the ten values ``N - 4 .. N + 5`` around the bisection's answer ``N``.

* :func:`subset_queries` lists the queries (all ``k``-subsets of ``range(n)``).
* :func:`fit` optimises one ``(n, d)`` problem and says whether every query was solved.
* :func:`critical_n` searches over ``n`` for any monotone yes/no probe (galloping, bisection, then the
  official script's final sweep).
* :func:`critical_n_curve` runs the search for several dimensions and seeds, in parallel processes.
* :func:`convexity` is the interval of the second-order coefficient of critical n on d (the shape test).

The official code is JAX (``code/free_embedding_experiment.py`` in google-deepmind/limit: Adam,
learning rate 0.01, temperature 0.1, at most 100,000 steps, early stop after 1,000 steps without a
1e-5 improvement of the loss). This is a PyTorch port with the same loss, update and success test;
the gradient of the loss is written out by hand (``softmax - target``, with the target added sparsely
and the loss read from the log-partition function and the positives' logits), which makes a step
about three times cheaper on the CPU than autograd and gives the same numbers to float32 rounding.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from embrepro import paths


@contextmanager
def torch_threads(n: int):
    """Run a block with ``n`` torch threads, then restore the previous number.

    The matrices here are tiny (at most a few thousand by a few hundred); for them one thread is
    faster than several, and much faster when other processes compete for the cores.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def subset_queries(n: int, k: int = 2):
    """The ``C(n, k)`` queries as a ``(C(n, k), k)`` long tensor of document indices, in lexical order."""
    import torch

    if not 0 < k <= n:
        raise ValueError(f"need 0 < k <= n, got n={n}, k={k}")
    return torch.tensor(list(itertools.combinations(range(n), k)), dtype=torch.long).reshape(-1, k)


def top_k_accuracy(scores, relevant) -> float:
    """Share of relevant documents found in each query's top ``k`` (``k`` = relevant per query).

    ``scores`` is (queries x documents), ``relevant`` is (queries x k) document indices. This is the
    paper's accuracy: 1.0 means that every query's top ``k`` is exactly its subset.
    """
    import torch

    k = relevant.shape[1]
    top = scores.topk(k, dim=1).indices
    hits = (top.unsqueeze(2) == relevant.unsqueeze(1)).any(dim=1)
    return float(hits.float().mean()) if len(relevant) else 1.0


@dataclass
class FitResult:
    """One optimisation of an ``(n, d)`` problem.

    ``success`` is True when every query's top ``k`` was its subset at some check; ``steps`` is the
    number of Adam steps taken; ``stopped`` says why the loop ended ("solved", "plateau", "budget").
    """

    n: int
    d: int
    k: int
    seed: int
    success: bool
    accuracy: float
    loss: float
    steps: int
    stopped: str
    seconds: float


def fit(n: int, d: int, k: int = 2, *, seed: int = 0, max_steps: int = 100_000, lr: float = 0.01,
        temperature: float = 0.1, patience: int = 1000, min_delta: float = 1e-5, check_every: int = 25,
        device: str = "cpu", relevant=None, threads: int = 1) -> FitResult:
    """Optimise free query and document vectors so that every ``k``-subset of ``n`` documents is a top-k.

    Full-batch Adam on InfoNCE: for each query, the log-softmax over all documents of the scaled
    dot products, averaged over its ``k`` relevant documents. All vectors are renormalised to unit
    length after every step. The loop stops when the top-k accuracy (checked every
    ``check_every`` steps) reaches 1, when the loss has not improved by ``min_delta`` for
    ``patience`` steps, or after ``max_steps``. ``relevant`` replaces the ``C(n, k)`` queries by
    any (queries x k) tensor of document indices, e.g. the qrels of a real data set. ``threads``
    is the number of torch threads used for the optimisation (see :func:`torch_threads`).
    """
    import torch

    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    relevant = (subset_queries(n, k) if relevant is None else torch.as_tensor(relevant, dtype=torch.long)).to(device)
    k = relevant.shape[1]
    m = len(relevant)
    minus_target = torch.full(relevant.shape, -1.0 / k, device=device)  # each relevant document carries 1/k
    queries = torch.nn.functional.normalize(torch.randn(m, d, generator=gen), dim=1).to(device)
    docs = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1).to(device)
    queries.grad, docs.grad = torch.zeros_like(queries), torch.zeros_like(docs)
    optimiser = torch.optim.Adam([queries, docs], lr=lr)
    scale = 1.0 / (m * temperature)
    # Unit vectors give |logit| <= 1 / temperature, so exp() cannot overflow float32 unless the
    # temperature is tiny; only then is each row shifted by its maximum first.
    shift = temperature < 0.02

    best, since_best, loss, accuracy, stopped, step = math.inf, 0, math.nan, 0.0, "budget", 0
    with torch.no_grad(), torch_threads(threads):
        for step in range(1, max_steps + 1):
            logits = torch.mm(queries, docs.T.mul(1.0 / temperature))
            if shift:
                logits.sub_(logits.amax(dim=1, keepdim=True))
            relevant_logits = logits.gather(1, relevant)
            p = logits.exp_()                                  # in place: the logits are not needed again
            z = p.sum(dim=1, keepdim=True)
            # InfoNCE: mean over queries and their k positives of log z - logit
            loss = float(z.log().sum() / m - relevant_logits.sum() / (m * k))
            # d loss / d logits = (softmax - target) / m; the chain rule through Q D^T / T:
            p.div_(z).scatter_add_(1, relevant, minus_target)
            torch.mm(p, docs, out=queries.grad).mul_(scale)
            torch.mm(p.T, queries, out=docs.grad).mul_(scale)
            optimiser.step()
            queries.div_(queries.norm(dim=1, keepdim=True))
            docs.div_(docs.norm(dim=1, keepdim=True))

            if loss < best - min_delta:
                best, since_best = loss, 0
            else:
                since_best += 1
            if step % check_every == 0 or step == max_steps:
                accuracy = top_k_accuracy(queries @ docs.T, relevant)
                if accuracy == 1.0:
                    stopped = "solved"
                    break
            if since_best >= patience:
                stopped = "plateau"
                break
    return FitResult(n, d, k, seed, stopped == "solved", accuracy, loss, step, stopped,
                     time.perf_counter() - start)


@dataclass
class Search:
    """The outcome of :func:`critical_n`: the largest ``n`` that passed, and every probe made.

    ``bisected`` is the answer of the galloping and bisection phases alone, before the final sweep
    (equal to ``n`` when no sweep was asked for, or when the sweep found nothing larger).
    """

    n: int
    probes: list[tuple[int, bool]] = field(default_factory=list)
    bisected: int | None = None

    def __post_init__(self):
        if self.bisected is None:
            self.bisected = self.n


def critical_n(passes: Callable[[int], bool], *, start: int = 3, lowest: int = 2, grow: float = 1.5,
               highest: int = 100_000, gallop: str = "geometric",
               sweep: tuple[int, int] | None = None) -> Search:
    """The largest ``n`` for which ``passes(n)`` is True, assuming it is True up to a point, then False.

    Three phases, as in the official script (``_run_critical_n_search_for_config``):

    1. **Galloping** from ``start`` until a probe fails (or, if ``start`` fails, downwards until one
       passes). ``gallop="geometric"`` multiplies ``n`` by ``grow`` (at least +1) going up and
       bisects between ``lowest`` and ``start`` going down; ``gallop="official"`` moves by steps of
       1, 2, 4, 8, ... in either direction, as the official script does.
    2. **Bisection** between the last pass and the first failure.
    3. **Sweep** (only with ``sweep=(lo, hi)``; the official script uses ``(-4, 5)``): probe every
       ``n`` from ``N + lo`` to ``N + hi`` around the bisection's answer ``N``. A real optimiser is
       not perfectly monotone in ``n`` (a probe can stall at one ``n`` and succeed at a larger one),
       and the answer is then the largest ``n`` that passed in any phase.

    ``lowest`` is assumed to pass and is never probed; each ``n`` is probed at most once (repeated
    values reuse the first result, as the official script's cache does).
    """
    if gallop not in ("geometric", "official"):
        raise ValueError(f"gallop must be 'geometric' or 'official', got {gallop!r}")
    probes: list[tuple[int, bool]] = []
    seen: dict[int, bool] = {}

    def probe(n: int) -> bool:
        if n <= lowest:
            return True
        if n not in seen:
            seen[n] = bool(passes(n))
            probes.append((n, seen[n]))
        return seen[n]

    def finish(bisected: int) -> Search:
        if sweep is not None:
            for offset in range(sweep[0], sweep[1] + 1):
                probe(min(highest, max(bisected + offset, lowest)))
        best = max([bisected] + [n for n, ok in probes if ok])
        return Search(best, probes, bisected)

    lo, hi, n = lowest, None, max(start, lowest + 1)
    if gallop == "official":
        if probe(n):
            lo, step = n, 1
            while hi is None:
                if lo >= highest:
                    return finish(lo)
                n = min(highest, lo + step)
                if probe(n):
                    lo, step = n, step * 2
                else:
                    hi = n
        else:
            hi, step = n, 1
            while hi - 1 > lowest:
                n = max(hi - step, lowest + 1)
                if probe(n):
                    lo = n
                    break
                hi, step = n, step * 2
    else:
        while hi is None:
            if probe(n):
                lo = n
                if n >= highest:
                    return finish(n)
                n = min(highest, max(n + 1, math.ceil(n * grow)))
            else:
                hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return finish(lo)


def _curve_for_seed(seed: int, dims: Sequence[int], k: int, fit_kwargs: dict, threads: int,
                    search: dict | None = None) -> list[dict]:
    """Critical n for each dimension, in increasing order, for one seed (one worker process).

    The first dimension's search starts at ``k + 1``; later ones start from a straight-line
    extrapolation of the previous two dimensions' answers (from the previous answer alone for the
    second dimension). Critical n does not shrink as d grows, and a convex curve lies above its
    chords, so the start usually passes and the gallop only has a few steps to make.
    """
    search = dict(search or {})
    rows, done = [], []
    for d in sorted(dims):
        fits: list[FitResult] = []

        def passes(n: int) -> bool:
            fits.append(fit(n, d, k, seed=seed, threads=threads, **fit_kwargs))
            return fits[-1].success

        if len(done) >= 2:
            (d0, n0), (d1, n1) = done[-2], done[-1]
            start = n1 + math.floor((n1 - n0) / (d1 - d0) * (d - d1))
        else:
            start = done[-1][1] if done else k + 1
        start = max(start, k + 1)
        t0 = time.perf_counter()
        found = critical_n(passes, start=start, lowest=k, **search)
        done.append((d, found.n))
        rows.append({"d": d, "seed": seed, "critical_n": found.n, "bisected_n": found.bisected,
                     "start": start, "probes": len(found.probes), "seconds": time.perf_counter() - t0,
                     "fits": [asdict(f) for f in fits]})
    return rows


def critical_n_curve(dims: Sequence[int], seeds: Sequence[int], k: int = 2, *, workers: int | None = None,
                     gallop: str = "geometric", sweep: tuple[int, int] | None = None,
                     **fit_kwargs) -> list[dict]:
    """Critical n for every dimension and seed; one row per (d, seed) with the probes' details.

    Seeds run in parallel processes (``workers``, default :func:`embrepro.paths.threads`),
    each with one torch thread, since one problem is too small to use several cores well.
    ``gallop`` and ``sweep`` go to :func:`critical_n` (``gallop="official", sweep=(-4, 5)`` is the
    official script's search); ``fit_kwargs`` go to :func:`fit` (``max_steps``, ``patience``, ``lr``, ...).
    Every probe runs on its own fixed seed with one thread, so the rows do not depend on ``workers``.
    """
    workers = workers or paths.threads()
    workers = max(1, min(workers, len(seeds)))
    search = {"gallop": gallop, "sweep": sweep}
    if workers == 1:
        per_seed = [_curve_for_seed(s, dims, k, fit_kwargs, 1, search) for s in seeds]
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            per_seed = list(pool.map(_curve_for_seed, seeds, [dims] * len(seeds), [k] * len(seeds),
                                     [fit_kwargs] * len(seeds), [1] * len(seeds), [search] * len(seeds)))
    return sorted((row for rows in per_seed for row in rows), key=lambda r: (r["d"], r["seed"]))


def convexity(d: Sequence[float], n: Sequence[float], seeds: Sequence[int] | None = None, *, min_d: float = 4):
    """The interval of the second-order coefficient of critical n on d: the test of "faster than linear".

    A straight line ``n = a + b d`` with a negative intercept has a log-log slope above 1 (the old
    test), but a second-order coefficient of zero; a convex curve has a positive one. Only points
    with ``d >= min_d`` are used. Two intervals of the same coefficient are formed and the wider is
    returned (``../shared/docs/verdicts.md``: where seed noise and point noise both apply, use the
    wider): the t-interval of a least-squares quadratic through every point
    (:func:`embrepro.stats.quadratic_coefficient`), and, when ``seeds`` are given and at least two
    seeds each have three distinct ``d``, the t-interval over the seeds' own coefficients
    (n - 1 degrees of freedom). Raises ValueError when too few dimensions remain for a quadratic.
    """
    import numpy as np

    from embrepro import stats

    d, n = np.asarray(d, float), np.asarray(n, float)
    if d.shape != n.shape:
        raise ValueError("d and n must be aligned")
    keep = d >= min_d
    pooled = stats.quadratic_coefficient(d[keep], n[keep])
    if seeds is None:
        return pooled
    seeds = np.asarray(seeds)[keep]
    per_seed = []
    for s in np.unique(seeds):
        ds, ns = d[keep][seeds == s], n[keep][seeds == s]
        if len(np.unique(ds)) >= 3:
            per_seed.append(float(np.polyfit(ds, ns, 2)[0]))
    return stats.seeds_and_items(per_seed, pooled, one_seed="items")  # fewer than 2 seeds: the pooled fit


def loglog_slope(d: Sequence[float], n: Sequence[float], *, min_d: float = 4) -> float:
    """The least-squares slope of log n on log d (the chapter's old test of growth, kept to show its flaw)."""
    import numpy as np

    d, n = np.asarray(d, float), np.asarray(n, float)
    keep = (d >= min_d) & (n > 0)
    return float(np.polyfit(np.log(d[keep]), np.log(n[keep]), 1)[0])


def paper_fit(d):
    """The paper's cubic fit of critical n against d (k = 2), as quoted second-hand in anchors.md.

    ``-10.5322 + 4.0309 d + 0.0520 d^2 + 0.0037 d^3``; negative below d = 3, so only meaningful
    inside the range the paper fitted.
    """
    return -10.5322 + 4.0309 * d + 0.0520 * d ** 2 + 0.0037 * d ** 3
