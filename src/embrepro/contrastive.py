"""Contrastive training of sentence encoders on a fixed budget, with alignment and uniformity.

Part II's chapters train encoders (SimCSE, contrastive pre-training, definitions, NLI) and compare
arms that must get the same budget. This module gives them:

* :func:`alignment` and :func:`uniformity`, Wang & Isola's (2020) two measures of an embedding
  space: the mean squared distance between the normalised vectors of positive pairs (lower: pairs
  closer), and the log of the mean Gaussian potential ``exp(-t ||x - y||^2)`` over all pairs of
  normalised vectors (lower: vectors spread more evenly over the sphere).
* :func:`nli_triplets`: (premise, entailed hypothesis, contradicting hypothesis) triplets, the
  supervised SimCSE input, from the NLI pairs the mirror holds.
* :func:`train_steps`: exactly ``steps`` optimiser updates of a sentence-transformers model with
  any of its losses, on batches fixed by a seed, logging the loss every step and alignment and
  uniformity on held-out pairs every ``probe_every`` steps. The step count and batch size are the
  budget, so two arms compared by a chapter receive the same number of updates and examples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from embrepro.data.benchmarks import NLIPairs

__all__ = ["Probe", "TrainLog", "alignment", "nli_triplets", "train_steps", "uniformity"]


def _unit(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a zero vector has no direction: alignment and uniformity need non-zero vectors")
    return x / norms


def alignment(x, y, alpha: float = 2.0) -> float:
    """Mean of ``||x_i - y_i||^alpha`` over positive pairs of L2-normalised vectors (0 to 2^alpha)."""
    x, y = _unit(x), _unit(y)
    if x.shape != y.shape:
        raise ValueError(f"pairs differ in shape: {x.shape} vs {y.shape}")
    return float(np.mean(np.linalg.norm(x - y, axis=1) ** alpha))


def uniformity(x, t: float = 2.0) -> float:
    """``log`` of the mean of ``exp(-t ||x_i - x_j||^2)`` over all pairs ``i < j`` of normalised vectors.

    Its floor for n points on a sphere is reached when they spread evenly; identical vectors give 0.
    """
    x = _unit(x)
    if len(x) < 2:
        raise ValueError("uniformity needs at least two vectors")
    sq = np.clip(2.0 - 2.0 * (x @ x.T), 0.0, None)  # squared distances of unit vectors
    iu = np.triu_indices(len(x), k=1)
    values = -t * sq[iu]
    top = values.max()
    return float(top + np.log(np.mean(np.exp(values - top))))


def nli_triplets(pairs: NLIPairs) -> list[tuple[str, str, str]]:
    """(premise, entailment, contradiction) for every premise that has both kinds of hypothesis.

    When a premise has several of either, they are paired in order (first with first, ...), so
    every hypothesis is used at most once. The order follows the first appearance of the premise.
    """
    by_premise: dict[str, dict[str, list[str]]] = {}
    for p, h, label in zip(pairs.premises, pairs.hypotheses, pairs.labels):
        by_premise.setdefault(p, {"entailment": [], "contradiction": []})
        if label in ("entailment", "contradiction"):
            by_premise[p][label].append(h)
    out = []
    for p, hyps in by_premise.items():
        for ent, con in zip(hyps["entailment"], hyps["contradiction"]):
            out.append((p, ent, con))
    return out


@dataclass
class Probe:
    """Alignment and uniformity measured at one step (``step`` 0 is before any update)."""

    step: int
    alignment: float
    uniformity: float


@dataclass
class TrainLog:
    """One run: its budget, the loss of every step, the probes and the seconds spent updating."""

    steps: int
    batch_size: int
    examples: int = 0
    losses: list[float] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    seconds: float = 0.0

    def probe_table(self):
        import pandas as pd
        return pd.DataFrame([vars(p) for p in self.probes]).set_index("step")


def _embed(model, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    return np.asarray(model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                   show_progress_bar=False), dtype=np.float64)


def measure(model, positive_pairs: Sequence[tuple[str, str]], texts: Sequence[str], step: int = 0) -> Probe:
    """Alignment on ``positive_pairs`` and uniformity on ``texts``, with the model in eval mode."""
    was_training = model.training
    model.eval()
    a = _embed(model, [p for p, _ in positive_pairs])
    b = _embed(model, [q for _, q in positive_pairs])
    u = _embed(model, texts)
    if was_training:
        model.train()
    return Probe(step, alignment(a, b), uniformity(u))


def train_steps(model, loss_fn, examples: Sequence[tuple[str, ...]], *, steps: int, batch_size: int,
                lr: float = 2e-5, seed: int = 0, labels: Sequence[float] | None = None,
                probe_pairs: Sequence[tuple[str, str]] | None = None, probe_texts: Sequence[str] | None = None,
                probe_every: int = 0, weight_decay: float = 0.0, progress: bool = True,
                on_step: Callable[[int, float], None] | None = None) -> TrainLog:
    """Train ``model`` in place for exactly ``steps`` AdamW updates of ``loss_fn``.

    ``examples`` are tuples of texts, one column per input of the loss (e.g. ``(anchor, positive)``
    for ``MultipleNegativesRankingLoss``; ``(x, x)`` is unsupervised SimCSE, the two passes differing
    only by dropout). ``labels`` (one per example) are passed to losses that need them. Batches are
    drawn from a permutation seeded by ``seed`` and reshuffled at each pass, so two runs with the
    same seed see the same batches in the same order; ``seed`` also seeds torch (dropout masks, new
    heads). When ``probe_every`` is positive, alignment (on ``probe_pairs``) and uniformity (on
    ``probe_texts``) are measured before training and every ``probe_every`` steps.
    """
    import torch

    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    if len(examples) < batch_size:
        raise ValueError(f"{len(examples)} examples cannot fill a batch of {batch_size}")
    widths = {len(e) for e in examples}
    if len(widths) != 1:
        raise ValueError(f"every example needs the same number of texts, got widths {sorted(widths)}")
    if labels is not None and len(labels) != len(examples):
        raise ValueError(f"{len(labels)} labels for {len(examples)} examples")
    if probe_every and not (probe_pairs and probe_texts):
        raise ValueError("probe_every needs probe_pairs and probe_texts")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    (width,) = widths
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    log = TrainLog(steps, batch_size)
    if probe_every:
        log.probes.append(measure(model, probe_pairs, probe_texts, 0))
    order, pos = rng.permutation(len(examples)), 0
    model.train()
    bar = range(1, steps + 1)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc="training steps", leave=False)
    start = time.perf_counter()
    for step in bar:
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(examples)), 0
        batch = order[pos:pos + batch_size]
        pos += batch_size
        feats = []
        for col in range(width):
            f = model.preprocess([examples[i][col] for i in batch])
            feats.append({k: (v.to(model.device) if hasattr(v, "to") else v) for k, v in f.items()})
        target = (torch.as_tensor(np.asarray(labels)[batch], device=model.device)
                  if labels is not None else None)
        loss = loss_fn(feats, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        value = float(loss.detach())
        if not np.isfinite(value):
            raise FloatingPointError(f"the loss became {value} at step {step}; lower the learning rate")
        log.losses.append(value)
        log.examples += len(batch)
        if on_step:
            on_step(step, value)
        if probe_every and step % probe_every == 0:
            log.seconds += time.perf_counter() - start
            log.probes.append(measure(model, probe_pairs, probe_texts, step))
            start = time.perf_counter()
    log.seconds += time.perf_counter() - start
    model.eval()
    return log
