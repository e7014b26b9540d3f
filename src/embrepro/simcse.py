"""SimCSE's two views of a sentence, and the contrastive loss that compares them.

Unsupervised SimCSE (Gao, Yao & Chen 2021) encodes every sentence of a batch *twice* and asks each
first view to pick its own second view out of the batch. The two passes read the same words; what
makes them differ is the encoder's dropout, which draws a fresh random mask on every forward pass.
This module makes that noise a knob, so a chapter can take it away and see what it did:

* ``noise="dropout"``: the model in training mode, two passes, two independent dropout masks (the
  method);
* ``noise="none"``: the passes run with dropout switched off (the model in eval mode while the
  loss is computed; gradients still flow), so the two views are identical;
* ``noise="fixed"``: dropout on, but the random-number state is rewound before each further pass,
  so every pass of one step draws *the same* mask: the views are identical within a step while the
  mask still changes from step to step (the paper's "fixed 0.1" row of Table 3).

The loss (:func:`info_nce`) is InfoNCE with in-batch negatives: for anchor ``h_i`` and candidates
``c_j`` (the batch's positives, then any hard negatives), ``-log softmax_j(s * cos(h_i, c_j))`` at
``j = i``, averaged over the batch. The scale ``s`` is the inverse temperature: SimCSE's 0.05 is
``s = 20``, the default of sentence-transformers' ``MultipleNegativesRankingLoss``, which computes
the same number (the tests check it).

Also here: word deletion, the discrete augmentation SimCSE compares dropout with
(:func:`delete_words`); a word-vector encoder with dropout on its word vectors, so that a
from-scratch BiLSTM has the same kind of noise (:func:`glove_bilstm`); and
:func:`truncate_transformer`, which keeps only the first layers of a transformer encoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["NOISES", "SimCSELoss", "TokenDropout", "delete_words", "deletion_pairs", "glove_bilstm", "item_difference",
           "info_nce", "truncate_transformer", "views"]

NOISES = ("dropout", "none", "fixed")


# --------------------------------------------------------------------------------------------
# Discrete augmentation
# --------------------------------------------------------------------------------------------

def delete_words(text: str, ratio: float, rng: np.random.Generator) -> str:
    """``text`` with ``round(ratio * n)`` of its ``n`` whitespace words removed, at random positions.

    At least one word is removed when ``ratio > 0`` and the sentence has two or more words; at least
    one word is always kept. The remaining words keep their order.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"the deletion ratio must be in [0, 1), got {ratio}")
    words = text.split()
    n = len(words)
    if n < 2 or ratio == 0.0:
        return " ".join(words)
    k = min(n - 1, max(1, int(round(ratio * n))))
    drop = set(rng.choice(n, size=k, replace=False).tolist())
    return " ".join(w for i, w in enumerate(words) if i not in drop)


def deletion_pairs(sentences: Sequence[str], ratio: float, seed: int = 0) -> list[tuple[str, str]]:
    """``(s, delete_words(s))`` for every sentence: the word-deletion arm's positive pairs."""
    rng = np.random.default_rng(seed)
    return [(s, delete_words(s, ratio, rng)) for s in sentences]


# --------------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------------

def info_nce(anchors, positives, negatives=None, scale: float = 20.0):
    """InfoNCE with in-batch negatives (SimCSE's eq. 1 and, with ``negatives``, eq. 5).

    ``anchors`` and ``positives`` are ``(B, d)`` tensors, row ``i`` of each a positive pair;
    ``negatives`` (optional, ``(B, d)``) are hard negatives, one per anchor. Every anchor is scored
    against all ``B`` positives (its own and the other ``B - 1``, the in-batch negatives) and all
    hard negatives, by ``scale`` times the cosine; the loss is the cross-entropy of picking its own
    positive, averaged over anchors. ``scale = 1 / temperature``.
    """
    import torch
    import torch.nn.functional as F

    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    candidates = positives if negatives is None else torch.cat([positives, negatives], dim=0)
    a = F.normalize(anchors, dim=-1)
    c = F.normalize(candidates, dim=-1)
    logits = scale * a @ c.T                                   # (B, B) or (B, 2B)
    target = torch.arange(len(a), device=a.device)             # anchor i's positive is candidate i
    return F.cross_entropy(logits, target)


def views(model, features: Sequence[dict], noise: str = "dropout") -> list:
    """Sentence embeddings of each column of ``features``, one forward pass per column.

    ``noise`` decides how the passes differ (see the module docstring). The model's training flag
    is left as it was found.
    """
    import torch

    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, not {noise!r}")
    was_training = model.training
    out = []
    try:
        if noise == "none":
            model.eval()
        elif not was_training:
            model.train()
        state = torch.get_rng_state() if noise == "fixed" else None
        for i, f in enumerate(features):
            if noise == "fixed" and i > 0:
                torch.set_rng_state(state)                     # replay the first pass's dropout mask
            out.append(model(f)["sentence_embedding"])
    finally:
        model.train(was_training)
    return out


def _loss_class():
    import torch

    class _SimCSELoss(torch.nn.Module):
        """InfoNCE over the views of :func:`views`: columns (anchor, positive[, hard negative])."""

        def __init__(self, model, noise: str = "dropout", scale: float = 20.0):
            super().__init__()
            if noise not in NOISES:
                raise ValueError(f"noise must be one of {NOISES}, not {noise!r}")
            if scale <= 0:
                raise ValueError(f"scale must be positive, got {scale}")
            self.model, self.noise, self.scale = model, noise, float(scale)

        def forward(self, features, labels=None):
            if len(features) not in (2, 3):
                raise ValueError(f"SimCSE takes (anchor, positive) or (anchor, positive, negative), "
                                 f"got {len(features)} columns")
            emb = views(self.model, features, self.noise)
            return info_nce(emb[0], emb[1], emb[2] if len(emb) == 3 else None, self.scale)

    return _SimCSELoss


def SimCSELoss(model, noise: str = "dropout", scale: float = 20.0):  # noqa: N802 - reads like the class
    """A loss module for :func:`embrepro.contrastive.train_steps`: the model's parameters are its own.

    Unsupervised SimCSE: examples ``(s, s)``. Word deletion: ``(s, delete_words(s))``. Supervised:
    ``(premise, entailment)`` or ``(premise, entailment, contradiction)``.
    """
    return _loss_class()(model, noise, scale)


# --------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------

def _token_dropout_class():
    import torch

    class _TokenDropout(torch.nn.Module):
        """Dropout on the token vectors (``features["token_embeddings"]``), active in training mode."""

        def __init__(self, p: float = 0.1):
            super().__init__()
            if not 0.0 <= p < 1.0:
                raise ValueError(f"dropout p must be in [0, 1), got {p}")
            self.dropout = torch.nn.Dropout(p)

        def forward(self, features: dict) -> dict:
            features["token_embeddings"] = self.dropout(features["token_embeddings"])
            return features

    return _TokenDropout


def TokenDropout(p: float = 0.1):  # noqa: N802
    """A new token-vector dropout module (defined lazily so that importing this module needs no torch)."""
    return _token_dropout_class()(p)


def glove_bilstm(vocabulary: Sequence[str], matrix: np.ndarray, *, hidden: int, dropout: float = 0.1,
                 pooling: str = "mean", seed: int = 0, device: str = "cpu"):
    """:func:`embrepro.siamese.build_encoder`'s BiLSTM encoder with dropout ``p`` on the word vectors.

    The frozen word vectors carry no noise of their own; this dropout is the only thing that makes
    two passes over one sentence differ, as BERT's dropout does in SimCSE.
    """
    from sentence_transformers import SentenceTransformer

    from embrepro import siamese

    base = siamese.build_encoder(vocabulary, matrix, hidden=hidden, pooling=pooling, seed=seed, device=device)
    mods = list(base.children())
    return SentenceTransformer(modules=[mods[0], TokenDropout(dropout), *mods[1:]], device=device)


def truncate_transformer(model, layers: int):
    """Keep only the first ``layers`` transformer layers of a sentence-transformers model, in place.

    The embeddings, the kept layers and the pooling are unchanged; the later layers are dropped.
    Returns the model.
    """
    import torch

    auto = model[0].auto_model
    stack = auto.encoder.layer
    if not 1 <= layers <= len(stack):
        raise ValueError(f"layers must be between 1 and {len(stack)}, got {layers}")
    auto.encoder.layer = torch.nn.ModuleList(list(stack)[:layers])
    auto.config.num_hidden_layers = layers
    return model


# --------------------------------------------------------------------------------------------
# Intervals of probe measures
# --------------------------------------------------------------------------------------------

def item_difference(a_by_seed, b_by_seed, n_boot: int = 1000, seed: int = 0):
    """Mean of per-item values of A minus B (e.g. squared distances of probe pairs), over seeds and items.

    ``a_by_seed`` and ``b_by_seed`` hold one array per seed, aligned item by item and seed by seed.
    Returns the wider of a paired t-interval over the seeds' mean differences and a bootstrap over
    items of the seed-averaged differences (``verdicts.md``: "use the wider").
    """
    from embrepro import stats

    diff = np.asarray(a_by_seed, dtype=float) - np.asarray(b_by_seed, dtype=float)
    if diff.ndim != 2:
        raise ValueError(f"need one array of items per seed, got shape {diff.shape}")
    over_items = stats.bootstrap(lambda idx: diff[:, idx].mean(), diff.shape[1], n_boot=n_boot, seed=seed,
                                 what="item difference")
    return stats.seeds_and_items(diff.mean(axis=1), over_items)
