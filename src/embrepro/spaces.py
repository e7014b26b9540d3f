"""The book's three pretrained embedding spaces, encoded once per text list for the whole book.

``encode(name, texts)`` returns one float32 row per text from ``name``'s space:

* ``"minilm"``: all-MiniLM-L6-v2 (sentence-transformers, mean pooling, unit length, 384 d);
* ``"l3"``: paraphrase-MiniLM-L3-v2 through ONNX (mean pooling, not normalised, 384 d);
* ``"glove"``: averaged GloVe 6B 50d over the book's tokeniser (50 d; zero for no known word).

Encodings go through :class:`embrepro.retrieval.EmbeddingCache`, keyed by model, weights' sha256,
precision (MiniLM at the machine's default, :mod:`embrepro.precision`; L3 and GloVe in fp32) and
the exact list of texts, so two chapters that encode the same list share one encoding (the
MiniLM cache is the same one :func:`embrepro.retrieval.minilm_cache` fills). ``encode_with`` sends a
chapter's own MiniLM through that cache when the chapter's model is the stock one. ``rate(name,
texts)`` measures the cold speed the same way for every chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from embrepro import models, retrieval

__all__ = ["SPACES", "cache", "encode", "encode_with", "encoder", "rate"]

SPACES = ("minilm", "l3", "glove")
L3_BATCH = 16  # paraphrase-MiniLM-L3-v2's batch size (its vectors do not depend on it: see tests)
_GLOVE_REVISION = f"{models.GLOVE_VECTORS_SHA256}+{models.GLOVE_INDEX_SHA256}+book-tokenizer-1"


def _check(name: str) -> None:
    if name not in SPACES:
        raise ValueError(f"unknown space {name!r}; the book's pretrained spaces are {SPACES}")


@lru_cache(maxsize=None)
def encoder(name: str):
    """The loaded encoder of ``name`` (an object with ``encode(texts)``), loaded once per process."""
    _check(name)
    if name == "minilm":
        return models.load_encoder()
    if name == "l3":
        return models.load_paraphrase_l3()
    return models.AveragedWordVectors(models.load_glove())


@lru_cache(maxsize=None)
def cache(name: str) -> retrieval.EmbeddingCache:
    """The embedding cache of ``name`` (hits and misses counted per process)."""
    _check(name)
    if name == "minilm":
        return retrieval.minilm_cache(encoder(name))
    if name == "l3":
        l3 = encoder(name)

        def encode_l3(texts: list[str]) -> np.ndarray:
            # batches of 16 (texts sorted by word pieces): 7 to 9% faster than 64 on 2 cores, and
            # ONNX Runtime gives each text the same vector, bit for bit, whatever its batch
            return l3.encode(texts, batch_size=L3_BATCH, show_progress_bar=len(texts) > 500)

        return retrieval.EmbeddingCache(models.PARAPHRASE_L3, models.PARAPHRASE_L3_SHA256, encode_l3)
    glove = encoder(name)
    return retrieval.EmbeddingCache(models.GLOVE, _GLOVE_REVISION, lambda texts: glove.encode(texts))


def encode(name: str, texts: Sequence[str], kind: str = "text") -> np.ndarray:
    """``texts`` in ``name``'s space, from the shared cache when this exact list was encoded before."""
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be strings")
    return cache(name).get(texts, kind)


def encode_with(model_name: str, model, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """``texts`` by ``model``, a loaded sentence-transformers encoder that a chapter's parameter
    ``model_name`` names. When that is the book's all-MiniLM-L6-v2 the vectors come from the shared
    ``"minilm"`` space (computed once for the whole book; equal to ``model.encode``'s up to float
    rounding, since only the batching differs); any other model encodes the texts itself."""
    texts = list(texts)
    if models._ALIASES.get(model_name) == models.MINILM:
        return encode("minilm", texts)
    return np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                                   show_progress_bar=len(texts) > models.PROGRESS_TEXTS), dtype=np.float32)


def rate(name: str, texts: Sequence[str], sample: int = 64, seed: int = 0) -> retrieval.EncodeRate:
    """The cold encoding speed of ``name`` on a random sample of ``texts`` (see ``retrieval.encode_rate``)."""
    encode_uncached = cache(name).encode  # the cache's own encoder: same model, same precision
    return retrieval.encode_rate(lambda batch: encode_uncached(list(batch)), list(texts), sample=sample, seed=seed)
