"""InferSent on a CPU budget (Conneau et al. 2017), and the bag-of-vectors baselines it is compared with.

InferSent trains a sentence encoder through a natural language inference (NLI) classifier: both
sentences of a pair go through the same encoder, giving ``u`` and ``v``; a classifier reads
``(u, v, |u - v|, u * v)`` and predicts entailment, neutral or contradiction. Afterwards the
classifier is dropped and the encoder is used, frozen, on other tasks.

The encoder here is the paper's BiLSTM over frozen word vectors, with the three ways of turning the
hidden states ``h_1 .. h_T`` (forward and backward halves concatenated, ``2 x hidden`` numbers each)
into one vector that the chapter compares:

* ``max``: the largest value of every dimension over the positions (the paper's BiLSTM-max);
* ``mean``: the average over the positions (BiLSTM-mean);
* ``last``: the final state of each direction, forward after the last word and backward after the
  first (the paper's BiGRU-last, here with an LSTM).

Padding never enters a pooled vector: sequences are packed, and the max and mean only see real
positions. A sentence with no known word is read as one zero vector (the padding row).

The classifier follows the official code's default: three linear layers without a non-linearity
(``fc_dim`` units), trained with SGD (learning rate 0.1, multiplied by 0.99 after each epoch and
divided by 5 when the held-out accuracy drops, gradients clipped to norm 5), and the epoch with the
best held-out accuracy is kept. Adam, the official code's alternative, is offered for budgets of a few
hundred steps, where SGD at 0.1 barely moves (the chapter chooses between them on held-out data).

The baselines are bags of word vectors on the same tokens: the plain average, and SIF (Arora et al.
2017): each word weighted by ``a / (a + p(w))`` with ``p(w)`` its frequency in a corpus, then the
projection on the first singular vector of the set of sentence vectors removed.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from embrepro.siamese import glove_vocabulary, tokens

__all__ = ["POOLINGS", "BagOfVectors", "NLITrainLog", "accuracy", "build_encoder", "build_nli_net", "encode",
           "glove_vocabulary", "pad_batch", "pair_features", "remove_first_component", "sentence_ids", "sif_weights",
           "tokens", "train_nli", "word_counts", "word_index", "word_probabilities"]

POOLINGS = ("max", "mean", "last")


# --------------------------------------------------------------------------------------------
# Tokens to ids
# --------------------------------------------------------------------------------------------

def word_index(vocabulary: Sequence[str]) -> dict[str, int]:
    """Word -> row of a :func:`glove_vocabulary` list (row 0, the padding, is no word)."""
    return {w: i for i, w in enumerate(vocabulary) if i > 0}


def sentence_ids(texts: Sequence[str], index: Mapping[str, int]) -> list[list[int]]:
    """Word ids of each text (:func:`siamese.tokens`), unknown words dropped; may be empty."""
    return [[index[t] for t in tokens(text) if t in index] for text in texts]


def pad_batch(id_lists: Sequence[Sequence[int]]):
    """A (batch, length) LongTensor padded with 0 and the lengths; an empty sentence becomes one pad."""
    import torch

    lengths = [max(1, len(ids)) for ids in id_lists]
    out = torch.zeros((len(id_lists), max(lengths)), dtype=torch.long)
    for row, ids in enumerate(id_lists):
        if ids:
            out[row, :len(ids)] = torch.as_tensor(ids, dtype=torch.long)
    return out, torch.as_tensor(lengths, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# The encoder and the NLI network
# --------------------------------------------------------------------------------------------

def _encoder_class():
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class BiLSTMEncoder(nn.Module):
        """Frozen word vectors, a one-layer BiLSTM of ``hidden`` units per direction, then pooling."""

        def __init__(self, matrix: np.ndarray, hidden: int, pooling: str):
            super().__init__()
            self.embed = nn.Embedding.from_pretrained(torch.as_tensor(matrix, dtype=torch.float32), freeze=True,
                                                      padding_idx=0)
            self.lstm = nn.LSTM(matrix.shape[1], hidden, num_layers=1, bidirectional=True, batch_first=True)
            self.pooling = pooling
            self.dim = 2 * hidden

        def forward(self, ids, lengths):
            device = self.embed.weight.device
            packed = pack_padded_sequence(self.embed(ids.to(device)), lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            out, (h_n, _) = self.lstm(packed)
            if self.pooling == "last":               # forward state after the last word, backward after the first
                return torch.cat([h_n[0], h_n[1]], dim=1)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            lengths = lengths.to(device)
            real = (torch.arange(ids.shape[1], device=device)[None, :] < lengths[:, None]).unsqueeze(-1)
            if self.pooling == "max":
                return out.masked_fill(~real, float("-inf")).max(dim=1).values
            return (out * real).sum(dim=1) / lengths[:, None].to(out.dtype)

    return BiLSTMEncoder


def build_encoder(matrix: np.ndarray, hidden: int, pooling: str = "max", seed: int = 0, device: str = "cpu"):
    """A BiLSTM encoder over the frozen rows of ``matrix`` (row 0: padding); its weights come from ``seed``."""
    import torch

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if hidden < 1:
        raise ValueError(f"hidden must be a positive number of units, got {hidden!r}")
    torch.manual_seed(seed)
    model = _encoder_class()(np.asarray(matrix), hidden, pooling).to(device)
    model.eval()
    return model


def pair_features(u, v):
    """The classifier's input for a pair of sentence vectors: ``(u, v, |u - v|, u * v)`` side by side."""
    import torch

    return torch.cat([u, v, torch.abs(u - v), u * v], dim=1)


def _nli_class():
    from torch import nn

    class NLINet(nn.Module):
        """The encoder applied to both sentences and a classifier on :func:`pair_features`."""

        def __init__(self, encoder, fc_dim: int, n_classes: int = 3):
            super().__init__()
            self.encoder = encoder
            # The official code's default (nonlinear_fc = 0): three linear layers, no non-linearity.
            self.classifier = nn.Sequential(nn.Linear(4 * encoder.dim, fc_dim), nn.Linear(fc_dim, fc_dim),
                                            nn.Linear(fc_dim, n_classes))

        def forward(self, a, b):
            return self.classifier(pair_features(self.encoder(*a), self.encoder(*b)))

    return NLINet


def build_nli_net(encoder, fc_dim: int, n_classes: int = 3, seed: int = 0):
    import torch

    if fc_dim < 1:
        raise ValueError(f"fc_dim must be positive, got {fc_dim}")
    torch.manual_seed(seed + 7919)                      # the classifier's own initial weights
    return _nli_class()(encoder, fc_dim, n_classes).to(encoder.embed.weight.device)


@dataclass
class NLITrainLog:
    """One training run: loss per step, held-out accuracy and learning rate per epoch, the kept epoch."""

    steps: int = 0
    losses: list[float] = field(default_factory=list)
    dev_accuracy: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0

    def loss_drop(self, window: int = 50) -> float:
        """Mean loss of the first ``window`` steps minus that of the last ``window`` steps."""
        w = max(1, min(window, len(self.losses) // 2))
        return float(np.mean(self.losses[:w]) - np.mean(self.losses[-w:]))


def _batches(n: int, batch_size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def accuracy(net, a_ids: Sequence[Sequence[int]], b_ids: Sequence[Sequence[int]], labels: Sequence[int],
             batch_size: int = 512) -> np.ndarray:
    """Per-pair correctness (bool) of the NLI network's predictions."""
    import torch

    labels = np.asarray(labels)
    predicted = np.empty(len(labels), dtype=np.int64)
    net.eval()
    with torch.no_grad():
        for batch in _batches(len(labels), batch_size, None):
            logits = net(pad_batch([a_ids[i] for i in batch]), pad_batch([b_ids[i] for i in batch]))
            predicted[batch] = logits.argmax(dim=1).cpu().numpy()
    return predicted == labels


def train_nli(net, a_ids, b_ids, labels, dev: tuple, *, epochs: int, batch_size: int = 64, lr: float = 0.1,
              optimizer: str = "sgd", decay: float = 0.99, shrink: float = 5.0, max_norm: float = 5.0,
              seed: int = 0, progress: bool = False) -> NLITrainLog:
    """Train ``net`` in place with the official recipe (see the module docstring) for ``epochs`` epochs.

    ``dev = (a_ids, b_ids, labels)`` is the held-out split that picks the epoch that is kept (its
    weights are restored at the end) and, for SGD, triggers the learning-rate shrink. Batches come
    from a permutation drawn from ``seed`` at every epoch. ``optimizer="adam"`` (the official code's
    alternative) uses Adam at ``lr`` without decay or shrink, as the official code does.
    """
    import torch

    if epochs < 1 or batch_size < 2 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 2 and lr > 0, got {epochs}, {batch_size}, {lr}")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be sgd or adam, not {optimizer!r}")
    sgd = optimizer == "sgd"
    if not len(a_ids) == len(b_ids) == len(labels):
        raise ValueError("premises, hypotheses and labels must be equally long")
    labels = np.asarray(labels)
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(params, lr=lr) if sgd else torch.optim.Adam(params, lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    log, best, best_state = NLITrainLog(), -1.0, None
    start = time.perf_counter()
    bar = range(1, epochs + 1)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="NLI epochs", leave=False)
    for epoch in bar:
        if epoch > 1 and sgd:
            for group in optimiser.param_groups:
                group["lr"] *= decay
        log.learning_rates.append(optimiser.param_groups[0]["lr"])
        net.train()
        for batch in _batches(len(labels), batch_size, rng):
            logits = net(pad_batch([a_ids[i] for i in batch]), pad_batch([b_ids[i] for i in batch]))
            loss = loss_fn(logits, torch.as_tensor(labels[batch], dtype=torch.long, device=logits.device))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_norm)
            optimiser.step()
            log.losses.append(float(loss.detach()))
            log.steps += 1
        dev_acc = 100 * float(accuracy(net, *dev).mean())
        log.dev_accuracy.append(dev_acc)
        if dev_acc > best:
            best, best_state, log.best_epoch = dev_acc, copy.deepcopy(net.state_dict()), epoch
        elif sgd:
            for group in optimiser.param_groups:
                group["lr"] /= shrink
    net.load_state_dict(best_state)
    net.eval()
    log.seconds = time.perf_counter() - start
    return log


def encode(encoder, texts: Sequence[str], index: Mapping[str, int], batch_size: int = 512) -> np.ndarray:
    """Sentence vectors (float32, one row per text, in order) from a BiLSTM encoder.

    Texts are encoded in batches of similar length (sorted), which changes no vector.
    """
    import torch

    ids = sentence_ids(texts, index)
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    encoder.eval()
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            out[chunk] = encoder(*pad_batch([ids[j] for j in chunk])).cpu().numpy()
    return out


# --------------------------------------------------------------------------------------------
# Bags of word vectors: the average and SIF
# --------------------------------------------------------------------------------------------

def word_counts(sentences) -> Counter:
    """Token counts over an iterable of token lists (e.g. ``gutenberg_corpus(n).sentences_iter()``)."""
    counts: Counter = Counter()
    for sentence in sentences:
        counts.update(sentence)
    return counts


def word_probabilities(counts: Mapping[str, int]) -> dict[str, float]:
    """Each word's share of all counted tokens."""
    total = sum(counts.values())
    if total <= 0:
        raise ValueError("word_probabilities needs at least one counted token")
    return {w: c / total for w, c in counts.items()}


def sif_weights(words: Sequence[str], probabilities: Mapping[str, float], a: float = 1e-3) -> np.ndarray:
    """SIF weights ``a / (a + p(w))``; a word the corpus never saw has ``p = 0`` and weight 1."""
    if not a > 0:
        raise ValueError(f"the SIF parameter a must be positive, got {a}")
    return np.array([a / (a + probabilities.get(w, 0.0)) for w in words], dtype=np.float64)


def remove_first_component(X: np.ndarray) -> np.ndarray:
    """``X`` minus its projection on its first right singular vector (uncentred, as in Arora et al.'s code)."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) < 2:
        return X.copy()
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    u = vt[0]
    return X - np.outer(X @ u, u)


class BagOfVectors:
    """Weighted average of the word vectors of a sentence's known tokens; zeros for none.

    ``weights=None`` is the plain average; with SIF weights (:func:`sif_weights`, one per row of
    ``matrix``) and ``remove_pc=True`` it is SIF: the first singular direction of the sentences
    encoded *in one call* is removed (the paper's recipe: it is computed on the sentences at hand).
    """

    def __init__(self, matrix: np.ndarray, index: Mapping[str, int], weights: np.ndarray | None = None,
                 remove_pc: bool = False):
        self.matrix = np.asarray(matrix, dtype=np.float64)
        self.index = index
        self.weights = np.ones(len(self.matrix)) if weights is None else np.asarray(weights, dtype=np.float64)
        if len(self.weights) != len(self.matrix):
            raise ValueError(f"{len(self.weights)} weights for {len(self.matrix)} rows")
        self.remove_pc = remove_pc

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.matrix.shape[1]))
        for row, ids in enumerate(sentence_ids(texts, self.index)):
            if ids:
                out[row] = self.weights[ids] @ self.matrix[ids] / len(ids)
        if self.remove_pc:
            out = remove_first_component(out)
        return out.astype(np.float32)
