"""Pooling a transformer's layers into sentence vectors, and whitening those vectors.

Two post-processing steps that need no training (Su et al. 2021, "Whitening Sentence Representations
for Better Semantics and Faster Retrieval"; Huang et al. 2021, "WhiteningBERT"):

* **Pooling** turns the token states of one or more layers into one vector per sentence
  (:func:`pool`). ``hidden_states[0]`` is the embedding layer's output, ``hidden_states[i]`` the
  output of transformer layer ``i`` (the convention of Hugging Face ``output_hidden_states``):

  - ``"cls"``: the last layer's state at the first position (the ``[CLS]`` token);
  - ``"mean"``: the mean of the last layer's states over the real tokens (the attention mask);
  - ``"first_last"``: the mean over real tokens of the average of layer 1 and the last layer
    (BERT-whitening's "first-last average": the first *transformer* layer);
  - ``"embed_last"``: the same with the embedding layer (``hidden_states[0]``) in place of layer 1,
    the variant SimCSE's evaluation script used under the same name.

  Padded positions never enter a mean (:func:`masked_mean`). **Ditto** (Chen et al. 2023, "Ditto: A
  Simple and Efficient Approach to Improve Sentence Embeddings") weights each token of the
  first-last average by how much it attends to itself in one attention head (:func:`ditto_weights`,
  :func:`ditto_pool`).

* **Whitening** (:func:`fit_whitening`) estimates the mean ``mu`` and covariance ``C`` of a set of
  sentence vectors, takes the SVD ``C = U diag(S) U^T`` and maps ``x -> (x - mu) U diag(S)^{-1/2}``,
  so that the fitted vectors have zero mean and identity covariance. Keeping only the first ``k``
  columns of the kernel ``U diag(S)^{-1/2}`` keeps the ``k`` directions of largest variance
  (dimension reduction). The statistics can come from the sentences being compared (the "target"
  set) or from any other text; :meth:`Whitening.transform` applies them to new vectors.
  :func:`centering` is the control: the same mean removed, the kernel the identity.

Encoders that expose their layers: :func:`transformer_poolings` (a sentence-transformers model,
through its underlying Hugging Face model with ``output_hidden_states``) and
:func:`onnx_poolings` (an :class:`embrepro.models.OnnxSentenceEncoder`, whose graph gives only
the last layer's token states: ``"cls"`` and ``"mean"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

POOLINGS = ("cls", "mean", "first_last", "embed_last")
LAST_LAYER_POOLINGS = ("cls", "mean")


# --------------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------------

def masked_mean(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``tokens`` (batch, seq, dim) over the positions where ``mask`` (batch, seq) is 1.

    A row with no real token gets a zero vector.
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    weights = np.asarray(mask, dtype=np.float64)
    if tokens.ndim != 3 or weights.shape != tokens.shape[:2]:
        raise ValueError(f"tokens must be (batch, seq, dim) and mask (batch, seq); got {tokens.shape} and "
                         f"{weights.shape}")
    counts = weights.sum(axis=1, keepdims=True)
    return (tokens * weights[:, :, None]).sum(axis=1) / np.clip(counts, 1.0, None)


def pool(hidden_states: Sequence[np.ndarray], mask: np.ndarray, how: str) -> np.ndarray:
    """One sentence vector per row from a model's layer outputs (see the module docstring).

    ``hidden_states``: the layers' token states, embeddings first, each (batch, seq, dim); with a
    single layer only ``"cls"`` and ``"mean"`` are defined. ``mask``: 1 for real tokens, 0 for padding.
    """
    if how not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {how!r}")
    layers = list(hidden_states)
    if not layers:
        raise ValueError("pool() needs at least one layer of token states")
    last = np.asarray(layers[-1], dtype=np.float64)
    if how == "cls":
        return last[:, 0, :].copy()
    if how == "mean":
        return masked_mean(last, mask)
    if len(layers) < (3 if how == "first_last" else 2):
        raise ValueError(f"pooling {how!r} needs the embedding layer and the transformer layers; "
                         f"got {len(layers)} layer(s)")
    first = np.asarray(layers[1] if how == "first_last" else layers[0], dtype=np.float64)
    return masked_mean((first + last) / 2, mask)


# --------------------------------------------------------------------------------------------
# Whitening
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Whitening:
    """An affine map ``x -> (x - mu) @ kernel`` fitted on some vectors (``n_fit`` of them).

    ``kernel`` is (dim, k); ``variances`` are the covariance's eigenvalues (descending) that the
    kernel's columns rescale, or ``None`` for a map that does not rescale (:func:`centering`).
    """

    mu: np.ndarray
    kernel: np.ndarray
    variances: np.ndarray | None
    n_fit: int

    @property
    def dim(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def k(self) -> int:
        return int(self.kernel.shape[1])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply the fitted statistics to vectors ``x`` (n, dim): (x - mu) @ kernel, shape (n, k)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got shape {x.shape}")
        return (x - self.mu) @ self.kernel

    def truncate(self, k: int) -> "Whitening":
        """The same whitening keeping only the ``k`` directions of largest variance."""
        if self.variances is None:
            raise ValueError("a centering-only map has no variance order to truncate by")
        _check_k(k, self.k)
        return Whitening(self.mu, self.kernel[:, :k].copy(), self.variances[:k].copy(), self.n_fit)


def _check_k(k, limit: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= limit:
        raise ValueError(f"k must be an integer from 1 to {limit}, not {k!r}")


def fit_whitening(x: np.ndarray, k: int | None = None, rtol: float = 1e-10) -> Whitening:
    """Whitening statistics of the vectors ``x`` (n, dim), keeping ``k`` dimensions (all if None).

    ``mu`` is the mean, the covariance is ``np.cov`` (n - 1 in the denominator), and the kernel is
    ``U diag(S)^{-1/2}`` from its SVD, columns in order of decreasing variance. Fitting ``k``
    directions needs ``n > k`` vectors (the covariance of ``n`` vectors has rank at most ``n - 1``).

    Directions whose variance is below ``rtol`` times the largest carry only rounding noise: scaling
    them to unit variance would blow the noise up into a full dimension of every whitened vector. They
    are never kept, so the fitted ``k`` (``Whitening.k``) can be smaller than asked. This happens with
    real encoders: a LayerNorm's outputs satisfy one linear constraint, so the pooled states of a
    BERT-style model have at least one direction without variance. A fit with no direction left raises.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"fit_whitening needs a 2-d array of vectors, got shape {x.shape}")
    n, dim = x.shape
    k = dim if k is None else k
    _check_k(k, dim)
    if n <= k:
        raise ValueError(f"whitening {k} dimensions needs more than {k} vectors, got {n}")
    if not np.all(np.isfinite(x)):
        raise ValueError("the vectors contain NaN or infinity")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must lie in (0, 1), not {rtol}")
    mu = x.mean(axis=0)
    cov = np.cov(x - mu, rowvar=False)
    try:
        u, s, _ = np.linalg.svd(cov)
    except np.linalg.LinAlgError:
        # LAPACK's divide-and-conquer SVD (gesdd) fails to converge on some rank-deficient
        # covariances (fewer vectors than dimensions); the slower QR-iteration driver does not.
        from scipy import linalg

        u, s, _ = linalg.svd(cov, lapack_driver="gesvd")
    if s[0] <= 0:
        raise ValueError("the fitted vectors have no variance in any direction")
    k = min(k, int(np.sum(s > rtol * s[0])))
    s, u = s[:k], u[:, :k]
    return Whitening(mu, u / np.sqrt(s), s, n)


def centering(x: np.ndarray) -> Whitening:
    """The control: remove the mean of ``x`` and nothing else (the kernel is the identity)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"centering needs a non-empty 2-d array of vectors, got shape {x.shape}")
    return Whitening(x.mean(axis=0), np.eye(x.shape[1]), None, len(x))


def k_grid(dim: int, fractions: Sequence[float]) -> list[int]:
    """Distinct dimensions ``round(dim * f)`` (at least 1) for the fractions, largest first."""
    if not fractions or any(not 0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {list(fractions)}")
    return sorted({max(1, int(round(dim * f))) for f in fractions}, reverse=True)


# --------------------------------------------------------------------------------------------
# Encoders that expose their layers
# --------------------------------------------------------------------------------------------

def ditto_weights(attentions: Sequence[np.ndarray], layer: int, head: int) -> np.ndarray:
    """Ditto's token weights: the diagonal ``A[i, i]`` of one head's attention matrix.

    ``attentions[layer - 1]`` is transformer layer ``layer``'s attention, (batch, heads, seq, seq);
    the weight of token ``i`` is how much it attends to itself in head ``head`` (0-based). Returns
    (batch, seq).
    """
    if not 1 <= layer <= len(attentions):
        raise ValueError(f"layer must be 1 to {len(attentions)}, not {layer}")
    a = np.asarray(attentions[layer - 1])
    if not 0 <= head < a.shape[1]:
        raise ValueError(f"head must be 0 to {a.shape[1] - 1}, not {head}")
    return np.diagonal(a[:, head], axis1=1, axis2=2).copy()


def ditto_pool(hidden_states: Sequence[np.ndarray], mask: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Ditto (Chen et al. 2023): the first-last average of token states, weighted by ``weights``.

    Each real token's state counts in proportion to its weight (from :func:`ditto_weights`); padded
    positions get weight 0. With equal weights this is ``pool(..., "first_last")``.
    """
    layers = list(hidden_states)
    if len(layers) < 3:
        raise ValueError("Ditto pooling needs the embedding layer and at least two transformer layers")
    states = (np.asarray(layers[1], dtype=np.float64) + np.asarray(layers[-1], dtype=np.float64)) / 2
    return _weighted_mean(states, np.asarray(weights, dtype=np.float64) * np.asarray(mask, dtype=np.float64))


def _weighted_mean(tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1, keepdims=True)
    return (tokens * weights[:, :, None]).sum(axis=1) / np.where(total > 0, total, 1.0)


def transformer_poolings(model, texts: Sequence[str], poolings: Sequence[str] = POOLINGS, batch_size: int = 64,
                         progress: bool = False, ditto_heads: Sequence[tuple[int, int]] = ()
                         ) -> dict[str, np.ndarray]:
    """Every pooling of ``texts`` from one forward pass of a sentence-transformers model's transformer.

    ``model[0].auto_model`` (a Hugging Face model) runs with ``output_hidden_states=True`` on the
    model's own tokenizer and ``max_seq_length``; batches are sorted by length. The model's own
    pooling and normalisation modules are not applied: ``"mean"`` is its pooled vector before the
    ``Normalize`` step. Returns ``{pooling: float32 array (len(texts), dim)}`` in the order given.

    ``ditto_heads``: (layer, head) pairs (layer 1-based, head 0-based) for which Ditto's pooling
    (:func:`ditto_pool`) is added under the key ``"ditto L{layer} H{head}"``. Attention weights need
    the eager attention implementation, which the pass then uses (and restores afterwards); it
    changes the states only by float rounding (about 1e-5).
    """
    import torch

    for how in poolings:
        if how not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {how!r}")
    texts = list(texts)
    auto, tokenizer = model[0].auto_model, model.tokenizer
    dim = int(auto.config.hidden_size)
    out = {how: np.zeros((len(texts), dim), dtype=np.float32) for how in poolings}
    ditto_heads = [(int(layer), int(head)) for layer, head in ditto_heads]
    for layer, head in ditto_heads:
        if not 1 <= layer <= auto.config.num_hidden_layers or not 0 <= head < auto.config.num_attention_heads:
            raise ValueError(f"no head {head} in layer {layer} (layers 1-{auto.config.num_hidden_layers}, "
                             f"heads 0-{auto.config.num_attention_heads - 1})")
        out[f"ditto L{layer} H{head}"] = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = np.argsort([-len(t) for t in texts], kind="stable")
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="layers", total=len(starts))
    device = next(auto.parameters()).device
    was_training = auto.training
    implementation = auto.config._attn_implementation
    auto.eval()
    try:
        if ditto_heads and implementation != "eager":
            auto.set_attn_implementation("eager")
        with torch.inference_mode():
            for start in starts:
                rows = order[start:start + batch_size]
                batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True,
                                  max_length=model.max_seq_length, return_tensors="pt").to(device)
                result = auto(**batch, output_hidden_states=True, output_attentions=bool(ditto_heads))
                layers = [h.float().cpu().numpy() for h in result.hidden_states]
                mask = batch["attention_mask"].cpu().numpy()
                for how in poolings:
                    out[how][rows] = pool(layers, mask, how)
                if ditto_heads:
                    attentions = [a.float().cpu().numpy() for a in result.attentions]
                    for layer, head in ditto_heads:
                        weights = ditto_weights(attentions, layer, head)
                        out[f"ditto L{layer} H{head}"][rows] = ditto_pool(layers, mask, weights)
    finally:
        auto.train(was_training)
        if auto.config._attn_implementation != implementation:
            auto.set_attn_implementation(implementation)
    return out


def graph_outputs(encoder) -> list[dict]:
    """What an :class:`~embrepro.models.OnnxSentenceEncoder`'s graph exposes: name, shape, type."""
    return [{"output": o.name, "shape": str(o.shape), "type": o.type} for o in encoder.session.get_outputs()]


def onnx_poolings(encoder, texts: Sequence[str], batch_size: int = 64, progress: bool = False
                  ) -> dict[str, np.ndarray]:
    """``"cls"`` and ``"mean"`` of the last layer of an ONNX sentence encoder, plus the graph's own vector.

    The graph's float outputs are found by shape: one (batch, seq, dim) output (the last layer's token
    states) and, if present, one (batch, dim) output (the graph's pooled sentence vector), returned as
    ``"graph_pooled"`` so that a chapter can check ``"mean"`` against it. Tokenisation, truncation and
    length-sorted batching are the encoder's own.
    """
    outputs = encoder.session.get_outputs()
    tokens_out = [o.name for o in outputs if o.type == "tensor(float)" and len(o.shape) == 3]
    pooled_out = [o.name for o in outputs if o.type == "tensor(float)" and len(o.shape) == 2]
    if len(tokens_out) != 1:
        raise ValueError(f"expected one (batch, seq, dim) float output, found {graph_outputs(encoder)}")
    wanted = tokens_out + pooled_out[:1]
    inputs = {i.name for i in encoder.session.get_inputs()}
    texts = list(texts)
    dim = encoder.get_sentence_embedding_dimension()
    out = {how: np.zeros((len(texts), dim), dtype=np.float32) for how in LAST_LAYER_POOLINGS}
    if pooled_out:
        out["graph_pooled"] = np.zeros((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    ids, mask = encoder.tokenize(texts)
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")
    starts = range(0, len(texts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="onnx", total=len(starts))
    for start in starts:
        rows = order[start:start + batch_size]
        width = int(lengths[rows].max())
        feed = {"input_ids": ids[rows, :width], "attention_mask": mask[rows, :width]}
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        result = encoder.session.run(wanted, {k: v for k, v in feed.items() if k in inputs})
        for how in LAST_LAYER_POOLINGS:
            out[how][rows] = pool([result[0]], feed["attention_mask"], how)
        if pooled_out:
            out["graph_pooled"][rows] = result[1]
    return out
