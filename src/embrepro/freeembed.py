"""Free embeddings: how many documents can a d-dimensional space rank in every top-k way?

The "free embedding" experiment of Weller et al. (2025, "On the Theoretical Limitations of
Embedding-Based Retrieval") takes the most favourable case for a single-vector retriever: no
encoder at all. Each of ``n`` documents and each query is a free unit vector in ``R^d``, and there
is one query for every ``k``-subset of the documents (``C(n, k)`` queries), whose top ``k``
documents by dot product must be exactly that subset. The vectors are optimised directly with Adam
on a full-batch InfoNCE loss (temperature 0.1, every document a negative), renormalised after each
step. The *critical n* of a dimension ``d`` is the largest ``n`` for which the optimiser reaches
100% top-k accuracy; the paper finds it by galloping then binary search over ``n``.

* :func:`subset_queries` lists the queries (all ``k``-subsets of ``range(n)``).
* :func:`fit` optimises one ``(n, d)`` problem and says whether every query was solved.
* :func:`critical_n` searches over ``n`` for any monotone yes/no probe (galloping, then bisection).
* :func:`critical_n_curve` runs the search for several dimensions and seeds, in parallel processes.

The official code is JAX (``code/free_embedding_experiment.py`` in google-deepmind/limit: Adam,
learning rate 0.01, temperature 0.1, at most 100,000 steps, early stop after 1,000 steps without a
1e-5 improvement of the loss). This is a PyTorch port with the same loss, update and success test;
the gradient of the loss is written out by hand (``softmax - target``), which halves the cost of a
step on the CPU against autograd and gives the same numbers.
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
    target = torch.zeros(m, n, device=device)
    target.scatter_(1, relevant, 1.0 / k)                      # each relevant document carries 1/k
    queries = torch.nn.functional.normalize(torch.randn(m, d, generator=gen), dim=1).to(device)
    docs = torch.nn.functional.normalize(torch.randn(n, d, generator=gen), dim=1).to(device)
    queries.grad, docs.grad = torch.zeros_like(queries), torch.zeros_like(docs)
    optimiser = torch.optim.Adam([queries, docs], lr=lr)

    best, since_best, loss, accuracy, stopped, step = math.inf, 0, math.nan, 0.0, "budget", 0
    with torch.no_grad(), torch_threads(threads):
        for step in range(1, max_steps + 1):
            logits = queries @ docs.T / temperature
            log_p = torch.log_softmax(logits, dim=1)
            loss = float(-(target * log_p).sum() / m)
            # d loss / d logits = (softmax - target) / m; the chain rule through Q D^T / T:
            g = (log_p.exp_() - target) / (m * temperature)
            torch.mm(g, docs, out=queries.grad)
            torch.mm(g.T, queries, out=docs.grad)
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
    """The outcome of :func:`critical_n`: the largest ``n`` that passed, and every probe made."""

    n: int
    probes: list[tuple[int, bool]] = field(default_factory=list)


def critical_n(passes: Callable[[int], bool], *, start: int = 3, lowest: int = 2, grow: float = 1.5,
               highest: int = 100_000) -> Search:
    """The largest ``n`` for which ``passes(n)`` is True, assuming it is True up to a point, then False.

    Galloping from ``start`` (``n`` grows by the factor ``grow``, at least by one, until a probe
    fails), then bisection between the last pass and the first failure, as the official script
    does. If ``start`` itself fails, the bisection runs between ``lowest`` (assumed to pass) and
    ``start``. Each ``n`` is probed at most once.
    """
    probes: list[tuple[int, bool]] = []

    def probe(n: int) -> bool:
        ok = bool(passes(n))
        probes.append((n, ok))
        return ok

    lo, hi, n = lowest, None, max(start, lowest + 1)
    while hi is None:
        if probe(n):
            lo = n
            if n >= highest:
                return Search(n, probes)
            n = min(highest, max(n + 1, math.ceil(n * grow)))
        else:
            hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return Search(lo, probes)


def _curve_for_seed(seed: int, dims: Sequence[int], k: int, fit_kwargs: dict, threads: int) -> list[dict]:
    """Critical n for each dimension, in increasing order, for one seed (one worker process)."""
    rows, start = [], k + 1
    for d in sorted(dims):
        fits: list[FitResult] = []

        def passes(n: int) -> bool:
            fits.append(fit(n, d, k, seed=seed, threads=threads, **fit_kwargs))
            return fits[-1].success

        t0 = time.perf_counter()
        # critical n does not shrink with d, so the previous dimension's value is a safe start
        found = critical_n(passes, start=start, lowest=k)
        start = max(found.n, k + 1)
        rows.append({"d": d, "seed": seed, "critical_n": found.n, "probes": len(found.probes),
                     "seconds": time.perf_counter() - t0, "fits": [asdict(f) for f in fits]})
    return rows


def critical_n_curve(dims: Sequence[int], seeds: Sequence[int], k: int = 2, *, workers: int | None = None,
                     **fit_kwargs) -> list[dict]:
    """Critical n for every dimension and seed; one row per (d, seed) with the probes' details.

    Seeds run in parallel processes (``workers``, default :func:`embrepro.paths.threads`),
    each with one torch thread, since one problem is too small to use several cores well.
    ``fit_kwargs`` go to :func:`fit` (``max_steps``, ``patience``, ``lr``, ...).
    """
    workers = workers or paths.threads()
    workers = max(1, min(workers, len(seeds)))
    if workers == 1:
        per_seed = [_curve_for_seed(s, dims, k, fit_kwargs, 1) for s in seeds]
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            per_seed = list(pool.map(_curve_for_seed, seeds, [dims] * len(seeds), [k] * len(seeds),
                                     [fit_kwargs] * len(seeds), [1] * len(seeds)))
    return sorted((row for rows in per_seed for row in rows), key=lambda r: (r["d"], r["seed"]))


def paper_fit(d):
    """The paper's cubic fit of critical n against d (k = 2), as quoted second-hand in anchors.md.

    ``-10.5322 + 4.0309 d + 0.0520 d^2 + 0.0037 d^3``; negative below d = 3, so only meaningful
    inside the range the paper fitted.
    """
    return -10.5322 + 4.0309 * d + 0.0520 * d ** 2 + 0.0037 * d ** 3
