"""Distilling a cross-encoder into a bi-encoder (Distilled Sentence Embedding, Barkan et al. 2020).

A *cross-encoder* (teacher) reads both sentences of a pair at once and outputs one score; a
*bi-encoder* (student) encodes each sentence alone and scores a pair by the cosine of the two
vectors. Distillation trains the student to reproduce the teacher's scores, on the labelled
pairs and on any unlabelled pairs the teacher can score. This module holds the pieces a chapter
needs for that, stated once and tested:

* :func:`train_cross_encoder`: exactly ``steps`` AdamW updates of a cross-encoder (any object with
  a Hugging Face ``model`` with one output and its ``tokenizer``, e.g. a sentence-transformers
  ``CrossEncoder``) with the binary cross-entropy on targets in ``[0, 1]`` (an STS score 0-5
  divided by 5), the recipe of sentence-transformers' STS-B cross-encoder example. Batches are drawn
  from a permutation seeded by ``seed``, as in :func:`embrepro.contrastive.train_steps`.
* :func:`score_pairs`: the teacher's score of each pair, ``sigmoid(logit)`` in ``[0, 1]``.
* :func:`repaired_pairs` and :func:`mix_pairs`: unlabelled pairs for the teacher to label, built
  from sentences we have (random re-pairings, other data sets' pairs), without duplicates and
  without any pair of an excluded set (the evaluation pairs).
* :func:`retention`: the student's STS Spearman as a percentage of the teacher's, with a paired
  bootstrap over the test pairs (:func:`embrepro.stats.bootstrap`: the same resampled pairs for
  both), the quantity behind "an average relative degradation of 4.6%".
* :func:`interleaved_timings`: timings of several ways of doing the same job, interleaved repeat by
  repeat (the order alternates) after one warm-up call each, for :func:`embrepro.stats.median_ratio`.
* :func:`query_search_counts`: how many network passes one query against ``n`` candidates costs
  each way (the cross-encoder: ``n`` pair passes; the bi-encoder with candidate vectors computed
  once beforehand: one sentence pass and ``n`` dot products).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from embrepro import stats
from embrepro.contrastive import TrainLog

__all__ = ["interleaved_timings", "mix_pairs", "query_search_counts", "repaired_pairs", "retention",
           "score_pairs", "train_cross_encoder"]

Pair = tuple[str, str]


def _key(pair: Pair) -> tuple[str, str]:
    """A pair without its order: (a, b) and (b, a) are the same pair to a similarity score."""
    a, b = pair
    return (a, b) if a <= b else (b, a)


def repaired_pairs(sentences: Sequence[str], n: int, seed: int = 0,
                   exclude: Sequence[Pair] = ()) -> list[Pair]:
    """``n`` random pairs of two different sentences of ``sentences``, none twice, none in ``exclude``.

    Re-pairing sentences that were never paired gives mostly unrelated pairs: the low end of the
    similarity scale, which labelled STS data covers thinly. Order inside a pair does not matter for
    the duplicate test.
    """
    unique = list(dict.fromkeys(sentences))
    if len(unique) < 2:
        raise ValueError("re-pairing needs at least two different sentences")
    possible = len(unique) * (len(unique) - 1) // 2
    seen = {_key(p) for p in exclude}
    if n > possible:
        raise ValueError(f"{len(unique)} sentences give only {possible} pairs, fewer than n = {n}")
    rng = np.random.default_rng(seed)
    out: list[Pair] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not draw {n} new pairs: too few sentences left after the exclusions")
        i, j = rng.choice(len(unique), 2, replace=False)
        pair = (unique[i], unique[j])
        if _key(pair) in seen:
            continue
        seen.add(_key(pair))
        out.append(pair)
    return out


def mix_pairs(sources: Mapping[str, Sequence[Pair]], n: int, seed: int = 0,
              exclude: Sequence[Pair] = ()) -> tuple[list[Pair], list[str]]:
    """``n`` pairs drawn in equal shares from several sources (the remainder goes to the first ones).

    Each source is shuffled with ``seed``; pairs already taken (from any source, in either order) or
    in ``exclude`` are skipped. Returns the pairs and, for each, the name of its source. A source
    with too few usable pairs is an error, not a silent shortfall.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not sources:
        raise ValueError("mix_pairs needs at least one source")
    names = list(sources)
    shares = [n // len(names) + (1 if k < n % len(names) else 0) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    seen = {_key(p) for p in exclude}
    pairs: list[Pair] = []
    origin: list[str] = []
    for name, share in zip(names, shares):
        pool = list(sources[name])
        taken = 0
        for idx in rng.permutation(len(pool)):
            if taken == share:
                break
            a, b = pool[idx]
            if a == b or _key((a, b)) in seen:
                continue
            seen.add(_key((a, b)))
            pairs.append((a, b))
            origin.append(name)
            taken += 1
        if taken < share:
            raise ValueError(f"source {name!r} has only {taken} usable pairs, {share} were asked for")
    return pairs, origin


def _batches(cross, pairs: Sequence[Pair], max_length: int):
    import torch

    enc = cross.tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
    device = next(cross.model.parameters()).device
    return {k: v.to(device) for k, v in enc.items()}, torch


def score_pairs(cross, pairs: Sequence[Pair], batch_size: int = 64, max_length: int = 128,
                progress: bool = False) -> np.ndarray:
    """The cross-encoder's score of every pair: ``sigmoid`` of its single output, in ``[0, 1]``."""
    import torch

    model = cross.model
    was_training = model.training
    model.eval()
    out = np.empty(len(pairs), dtype=np.float64)
    starts = range(0, len(pairs), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="teacher scoring", leave=False)
    with torch.inference_mode():
        for start in starts:
            feats, _ = _batches(cross, pairs[start:start + batch_size], max_length)
            logits = model(**feats).logits
            if logits.shape[-1] != 1:
                raise ValueError(f"a teacher needs one output per pair, this model gives {logits.shape[-1]}")
            out[start:start + len(logits)] = torch.sigmoid(logits[:, 0].float()).cpu().numpy()
    if was_training:
        model.train()
    return out


def train_cross_encoder(cross, pairs: Sequence[Pair], targets: Sequence[float], *, steps: int, batch_size: int,
                        lr: float = 2e-5, seed: int = 0, max_length: int = 128, warmup: float = 0.1,
                        weight_decay: float = 0.01, progress: bool = True) -> TrainLog:
    """Train a cross-encoder in place for exactly ``steps`` AdamW updates; return its log.

    Loss: binary cross-entropy between ``sigmoid(logit)`` and the target in ``[0, 1]``. The learning
    rate rises linearly over the first ``warmup`` share of the steps and then falls linearly to 0
    (the schedule of BERT fine-tuning). ``seed`` fixes the batch order and torch's generator
    (dropout), so two runs with the same seed give the same losses.
    """
    import torch

    targets = np.asarray(targets, dtype=np.float32)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"need steps >= 1 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    if len(pairs) != len(targets):
        raise ValueError(f"{len(targets)} targets for {len(pairs)} pairs")
    if len(pairs) < batch_size:
        raise ValueError(f"{len(pairs)} pairs cannot fill a batch of {batch_size}")
    if not np.all((targets >= 0) & (targets <= 1)):
        raise ValueError("targets must lie in [0, 1] (divide an STS score by its maximum)")
    if lr <= 0 or not 0 <= warmup < 1:
        raise ValueError(f"need lr > 0 and 0 <= warmup < 1, got lr={lr}, warmup={warmup}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = cross.model
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr,
                                  weight_decay=weight_decay)
    warm = max(1, int(round(warmup * steps)))

    def factor(step: int) -> float:  # step counts from 0
        return (step + 1) / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    log = TrainLog(steps, batch_size)
    order, pos = rng.permutation(len(pairs)), 0
    model.train()
    bar = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc="teacher steps", leave=False)
    start = time.perf_counter()
    for step in bar:
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(pairs)), 0
        batch = order[pos:pos + batch_size]
        pos += batch_size
        feats, _ = _batches(cross, [pairs[i] for i in batch], max_length)
        logits = model(**feats).logits[:, 0]
        loss = loss_fn(logits, torch.as_tensor(targets[batch], device=logits.device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        scheduler.step()
        value = float(loss.detach())
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {step}; lower the learning rate")
        log.losses.append(value)
        log.examples += len(batch)
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


def retention(student: Sequence[float], teacher: Sequence[float], gold: Sequence[float], n_boot: int = 1000,
              seed: int = 0) -> stats.Interval:
    """100 x Spearman(student, gold) / Spearman(teacher, gold), paired bootstrap over the pairs.

    ``student`` and ``teacher`` are the two systems' scores of the same test pairs (a cosine, a
    cross-encoder output): rank correlation ignores their scales. 100 means the student keeps all of
    the teacher's quality; the paper's "average relative degradation of 4.6%" is a retention of 95.4.
    """
    s, t, g = (np.asarray(x, dtype=np.float64) for x in (student, teacher, gold))
    if not (s.shape == t.shape == g.shape) or s.ndim != 1:
        raise ValueError(f"student, teacher and gold must be aligned 1-d arrays, got {s.shape}, {t.shape}, {g.shape}")
    if len(g) < 4:
        raise ValueError("retention needs at least 4 pairs")

    def ratio(idx: np.ndarray) -> float:
        teach = stats.spearman(t[idx], g[idx])
        return 100.0 * stats.spearman(s[idx], g[idx]) / teach if teach > 0 else float("nan")

    if not np.isfinite(ratio(np.arange(len(g)))):  # the teacher does not rank the pairs at all
        raise ValueError("the teacher's Spearman is not positive: retention is undefined")
    return stats.bootstrap(ratio, len(g), n_boot=n_boot, seed=seed, what="the student's share of the teacher's Spearman")


def interleaved_timings(jobs: Mapping[str, Callable[[int], object]], repeats: int, warmup: bool = True,
                        clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds each job takes, measured in turns: repeat ``r`` runs every job once.

    ``jobs`` maps a name to a function of the repeat index (so a repeat can use its own query). The
    order of the jobs alternates between repeats (forward on even repeats, reversed on odd ones), so
    that a drift in machine load falls on all jobs alike; every job is called once before timing
    when ``warmup`` is true (first calls pay one-off costs). At least 5 repeats (``verdicts.md``,
    rule 5; :func:`embrepro.stats.median_ratio` checks it too).
    """
    if repeats < 5:
        raise ValueError(f"a side-by-side timing needs at least 5 repeats, got {repeats}")
    if len(jobs) < 2:
        raise ValueError("interleaving needs at least two jobs to compare")
    names = list(jobs)
    if warmup:
        for name in names:
            jobs[name](0)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = clock()
            jobs[name](r)
            out[name].append(clock() - start)
    return out


def query_search_counts(n: int) -> dict[str, int]:
    """Network passes and dot products for one query against ``n`` candidates, each way.

    Cross-encoder: ``n`` pair passes. Bi-encoder with the candidates encoded once beforehand: one
    sentence pass (the query) and ``n`` dot products.
    """
    if n < 1:
        raise ValueError(f"a search needs at least one candidate, got {n}")
    return {"cross-encoder pair passes": n, "bi-encoder sentence passes": 1, "bi-encoder dot products": n}
