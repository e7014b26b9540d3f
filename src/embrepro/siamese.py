"""Small siamese sentence encoders trained the Sentence-BERT way, on a CPU budget.

The Sentence-BERT chapter cannot fine-tune BERT on 570k NLI pairs; it trains the same *recipe* on a
weak base instead. An encoder here is a ``sentence_transformers`` model built from modules:

* :class:`~sentence_transformers.sentence_transformer.modules.WordEmbeddings` holding GloVe rows
  for the words of the chapter's data (frozen), with a whitespace tokenizer;
* optionally a one-layer bidirectional LSTM (the trainable part; without it the encoder is an
  average of word vectors);
* :class:`FirstToken`, which hands the first position's output to the pooling layer as its
  "CLS" vector, and a ``Pooling`` layer (``mean``, ``max`` or ``cls``).

:func:`train` runs a fixed number of optimiser steps with either objective of the library:
``SoftmaxLoss`` (a classifier on the concatenation ``(u, v, |u - v|)``, whose flags are the
paper's Table 6 ablation) or ``MultipleNegativesRankingLoss`` (in-batch negatives on entailment
pairs). The step count, not the wall clock, is the budget, so two arms get exactly the same
number of updates on the same batches.
"""

from __future__ import annotations

import string
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["CONCATENATIONS", "FirstToken", "TrainLog", "build_encoder", "classifier_features", "encode",
           "glove_vocabulary", "score_difference", "search_seconds", "tokens", "train"]

# The sentence-pair features the classifier sees: names as in the paper's Table 6.
CONCATENATIONS = {
    "(u, v, |u-v|)": dict(concatenation_sent_rep=True, concatenation_sent_difference=True,
                          concatenation_sent_multiplication=False),
    "(u, v)": dict(concatenation_sent_rep=True, concatenation_sent_difference=False,
                   concatenation_sent_multiplication=False),
    "(|u-v|)": dict(concatenation_sent_rep=False, concatenation_sent_difference=True,
                    concatenation_sent_multiplication=False),
    "(u, v, u*v)": dict(concatenation_sent_rep=True, concatenation_sent_difference=False,
                        concatenation_sent_multiplication=True),
    "(u, v, |u-v|, u*v)": dict(concatenation_sent_rep=True, concatenation_sent_difference=True,
                               concatenation_sent_multiplication=True),
}
PAD = "<pad>"


def tokens(text: str) -> list[str]:
    """Lower-cased whitespace tokens with punctuation stripped at both ends (empty ones dropped)."""
    out = []
    for t in text.lower().split():
        t = t.strip(string.punctuation)
        if t:
            out.append(t)
    return out


def glove_vocabulary(vectors, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """The words of ``texts`` that ``vectors`` knows, with their rows, in order of first appearance.

    Row 0 is a zero padding vector named ``<pad>``. Restricting GloVe's 400,000 rows to the words
    the chapter reads changes no sentence vector and keeps the embedding table small.
    """
    words = [w for w in dict.fromkeys(t for text in texts for t in tokens(text)) if w in vectors.key_to_index]
    matrix = np.zeros((len(words) + 1, vectors.vector_size), dtype=np.float32)
    if words:
        matrix[1:] = np.stack([vectors[w] for w in words])
    return [PAD, *words], matrix


def _modules():
    from sentence_transformers.sentence_transformer import modules

    return modules



def _first_token_class():
    import torch

    class FirstToken(torch.nn.Module):
        """Put the first position's output where ``Pooling(..., "cls")`` looks for it.

        After a bidirectional LSTM the first position carries the backward pass over the whole
        sentence: the closest thing this encoder has to BERT's ``[CLS]`` vector.
        """

        def forward(self, features: dict) -> dict:
            features["cls_token_embeddings"] = features["token_embeddings"][:, 0]
            return features

    return FirstToken


def FirstToken():  # noqa: N802 - a factory that reads like the class it returns
    """A new :class:`FirstToken` module (defined lazily so that importing this module needs no torch)."""
    return _first_token_class()()


def build_encoder(vocabulary: Sequence[str], matrix: np.ndarray, *, hidden: int | None = None,
                  pooling: str = "mean", seed: int = 0, device: str = "cpu"):
    """A siamese encoder: frozen word vectors, optionally a BiLSTM of ``hidden`` units per direction,
    then pooling (``mean``, ``max`` or ``cls`` = the first position).

    ``hidden=None`` gives the averaged (or max-pooled) word vectors themselves: the untrained
    baseline. The LSTM's initial weights come from ``seed``.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if pooling not in ("mean", "max", "cls"):
        raise ValueError(f"pooling must be mean, max or cls, not {pooling!r}")
    if hidden is not None and hidden < 1:
        raise ValueError(f"hidden must be a positive number of units or None, got {hidden!r}")
    if len(vocabulary) != len(matrix):
        raise ValueError(f"{len(vocabulary)} words but {len(matrix)} rows")
    m = _modules()
    tokenizer = m.tokenizer.WhitespaceTokenizer(list(vocabulary), stop_words=[], do_lower_case=True)
    emb = m.WordEmbeddings(tokenizer, torch.as_tensor(matrix), update_embeddings=False)
    layers = [emb]
    dim = matrix.shape[1]
    if hidden is not None:
        torch.manual_seed(seed)
        layers.append(m.LSTM(dim, hidden, num_layers=1, bidirectional=True))
        dim = 2 * hidden
    layers += [FirstToken(), m.Pooling(dim, pooling)]
    return SentenceTransformer(modules=layers, device=device)


def classifier_features(u, v, concatenation: str = "(u, v, |u-v|)"):
    """The classifier input of the softmax objective for a named concatenation (for reading and tests).

    This is what ``SoftmaxLoss`` builds from its flags: ``u``, ``v`` side by side, then ``|u - v|``,
    then ``u * v``, each included when its flag is on.
    """
    import torch

    flags = CONCATENATIONS[concatenation]
    parts = []
    if flags["concatenation_sent_rep"]:
        parts += [u, v]
    if flags["concatenation_sent_difference"]:
        parts.append(torch.abs(u - v))
    if flags["concatenation_sent_multiplication"]:
        parts.append(u * v)
    return torch.cat(parts, dim=1)


@dataclass
class TrainLog:
    """What one training run did: steps, examples seen, the loss per step and the seconds it took."""

    objective: str
    steps: int
    examples: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def loss_drop(self, window: int = 20) -> float:
        """Mean loss of the first ``window`` steps minus that of the last ``window`` steps."""
        w = max(1, min(window, len(self.losses) // 2))
        return float(np.mean(self.losses[:w]) - np.mean(self.losses[-w:]))


def train(model, premises: Sequence[str], hypotheses: Sequence[str], labels: Sequence[int], *,
          objective: str = "softmax", concatenation: str = "(u, v, |u-v|)", steps: int = 300,
          batch_size: int = 64, lr: float = 2e-3, seed: int = 0, num_labels: int = 3,
          positive_label: int | None = None, progress: bool = False) -> TrainLog:
    """Train ``model`` in place for exactly ``steps`` optimiser steps (Adam, learning rate ``lr``).

    ``objective="softmax"``: ``SoftmaxLoss`` over ``num_labels`` classes with the named
    ``concatenation`` (:data:`CONCATENATIONS`). ``objective="mnrl"``:
    ``MultipleNegativesRankingLoss`` on the pairs whose label is ``positive_label`` (premise as
    anchor, hypothesis as positive, the other hypotheses of the batch as negatives). Batches are
    drawn by a permutation from ``seed``, reshuffled at each pass over the data, so two runs with
    the same seed and data see the same batches in the same order.
    """
    import torch
    from sentence_transformers.sentence_transformer import losses

    if objective not in ("softmax", "mnrl"):
        raise ValueError(f"objective must be softmax or mnrl, not {objective!r}")
    if concatenation not in CONCATENATIONS:
        raise ValueError(f"concatenation must be one of {list(CONCATENATIONS)}, not {concatenation!r}")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got {steps} and {batch_size}")
    if not len(premises) == len(hypotheses) == len(labels):
        raise ValueError("premises, hypotheses and labels must be equally long")
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    if objective == "mnrl":
        if positive_label is None:
            raise ValueError("the mnrl objective needs positive_label (the entailment label's id)")
        index = index[labels == positive_label]
        loss_fn = losses.MultipleNegativesRankingLoss(model)
    else:
        torch.manual_seed(seed)  # the classifier head's initial weights
        loss_fn = losses.SoftmaxLoss(model, model.get_embedding_dimension(), num_labels,
                                     **CONCATENATIONS[concatenation])
    if len(index) < batch_size:
        raise ValueError(f"{len(index)} training pairs cannot fill a batch of {batch_size}")
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(index), 0
    log = TrainLog(objective if objective == "mnrl" else f"softmax {concatenation}", steps, 0)
    model.train()
    start = time.perf_counter()
    bar = range(steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc=log.objective, leave=False)
    for _ in bar:
        if pos + batch_size > len(order):
            order, pos = rng.permutation(index), 0
        batch = order[pos:pos + batch_size]
        pos += batch_size
        feats = [model.preprocess([premises[i] for i in batch]), model.preprocess([hypotheses[i] for i in batch])]
        feats = [{k: v.to(model.device) for k, v in f.items()} for f in feats]
        target = torch.as_tensor(labels[batch], dtype=torch.long, device=model.device)
        loss = loss_fn(feats, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        log.losses.append(float(loss.detach()))
        log.examples += len(batch)
    log.seconds = time.perf_counter() - start
    model.eval()
    return log


def encode(model, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Sentence vectors as a float32 array (no normalisation; cosine is taken by the evaluation)."""
    return np.asarray(model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                   show_progress_bar=False), dtype=np.float32)


def search_seconds(n: int, pair_seconds: float, sentence_seconds: float,
                   similarity_seconds: float = 0.0) -> tuple[float, float]:
    """Time to find the most similar pair among ``n`` sentences, from per-pass costs.

    A cross-encoder scores every pair once: ``n (n - 1) / 2`` pair passes of ``pair_seconds``. A
    bi-encoder encodes every sentence once (``n`` passes of ``sentence_seconds``) and then compares
    all vectors (``similarity_seconds``, measured at ``n`` itself). Returns (cross, bi) in seconds.
    """
    if n < 2:
        raise ValueError(f"a collection needs at least 2 sentences to have a pair, got {n}")
    if min(pair_seconds, sentence_seconds) <= 0 or similarity_seconds < 0:
        raise ValueError("per-pass times must be positive and the similarity time non-negative")
    return n * (n - 1) / 2 * pair_seconds, n * sentence_seconds + similarity_seconds


def score_difference(a_by_seed: Sequence[np.ndarray], b_by_seed: Sequence[np.ndarray], gold: Sequence[float],
                     n_boot: int = 1000, seed: int = 0):
    """STS Spearman x 100 of system A minus system B, averaged over seeds, with the wider of two intervals.

    ``a_by_seed`` and ``b_by_seed`` hold one cosine array per training seed, aligned with ``gold``
    (``b_by_seed`` may hold a single array: a deterministic baseline shared by every seed). The
    intervals are a paired t-interval over the per-seed differences (infinite with one seed) and a
    paired bootstrap over the pairs, every system scored on the same resamples and the seeds
    averaged inside each resample; the wider one is returned (:func:`embrepro.stats.seeds_and_items`).
    """
    from embrepro import stats

    a, b = stats.pair_seeds([np.asarray(c, float) for c in a_by_seed], [np.asarray(c, float) for c in b_by_seed])
    per_seed = [stats.spearman(x, gold) - stats.spearman(y, gold) for x, y in zip(a, b)]
    boots = stats.bootstrap_spearman(a + b, gold, n_boot=n_boot, seed=seed)
    diffs = boots[:, :len(a)].mean(axis=1) - boots[:, len(a):].mean(axis=1)
    over_pairs = stats.replicate_interval(float(np.mean(per_seed)), diffs,
                                          method=f"paired bootstrap over {len(gold)} pairs")
    return stats.seeds_and_items(per_seed, over_pairs)
