"""DefSent: sentence vectors trained to predict the word a definition defines.

Tsukagoshi, Sasano and Takeda (ACL 2021) encode a dictionary definition with BERT and ask the
*frozen* masked-language-model head to predict the defined word: a cross-entropy over the whole
vocabulary, with only the encoder trained. The book has no MLM head (see the chapter), so its
output layer here is a frozen word-embedding matrix (GloVe 6B 50d): the sentence vector is mapped
by a trained linear layer into the word-vector space and scored against every target word's
vector, ``logits = (W u) . E^T / tau``. That is the paper's objective with the word-embedding
matrix standing in for BERT's tied decoder, plus one small trained projection (BERT's head has its
own transform layer, frozen in the paper).

The dictionary is WordNet 3.0: each synset's gloss (the definition, without the example
sentences after ``;  "``) paired with each of its single-word lemmas that the target vocabulary
knows. Words, not pairs, are split into train and dev so that the dev words are never seen as
targets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DefinitionPairs", "clean_gloss", "definition_pairs", "load_wordnet_glosses", "split_by_word",
           "DefSentLoss", "word_accuracy"]

_EXAMPLES = re.compile(r';\s*"')


def clean_gloss(gloss: str) -> str:
    """The definition part of a WordNet gloss: example sentences (after ``; "``) dropped, trimmed."""
    return _EXAMPLES.split(gloss, 1)[0].strip().rstrip(";").strip()


def parse_gloss_line(line: str) -> tuple[str, tuple[str, ...], str] | None:
    """``(pos, lemmas, definition)`` from one line of a WordNet ``data.*`` file; ``None`` for licence lines."""
    from embrepro.data.lexicons import parse_wordnet_data_line

    synset = parse_wordnet_data_line(line)
    if synset is None or " | " not in line:
        return None
    return synset.pos, synset.lemmas, clean_gloss(line.split(" | ", 1)[1])


def load_wordnet_glosses(parts_of_speech: str = "nvar") -> list[tuple[str, tuple[str, ...], str]]:
    """Every WordNet 3.0 synset as ``(pos, lemmas, definition)``, in file order (noun, verb, adj, adverb)."""
    from embrepro.data.lexicons import iter_wordnet_data

    return [(synset.pos, synset.lemmas, clean_gloss(line.split(" | ", 1)[1]))
            for synset, line in iter_wordnet_data(parts_of_speech) if " | " in line]


@dataclass(frozen=True)
class DefinitionPairs:
    """Definition -> word pairs: ``definitions[i]`` defines ``words[i]``."""

    definitions: list[str]
    words: list[str]

    def __len__(self) -> int:
        return len(self.words)


def definition_pairs(glosses, vocabulary, *, min_definition_words: int = 2) -> DefinitionPairs:
    """Pairs (definition, word) for every single-word lemma in ``vocabulary`` (lower-cased).

    Multi-word lemmas (with ``_``) are skipped, as are definitions of fewer than
    ``min_definition_words`` words and definitions that contain the defined word itself (the
    encoder would only have to copy it). A (definition, word) pair occurs once.
    """
    vocab = set(vocabulary)
    seen, defs, words = set(), [], []
    for _pos, lemmas, definition in glosses:
        tokens = [t.strip(".,;:()'\"!?").lower() for t in definition.split()]
        if len([t for t in tokens if t]) < min_definition_words:
            continue
        for lemma in lemmas:
            word = lemma.lower()
            if "_" in word or "-" in word or word not in vocab or word in tokens:
                continue
            if (definition, word) in seen:
                continue
            seen.add((definition, word))
            defs.append(definition)
            words.append(word)
    return DefinitionPairs(defs, words)


def split_by_word(pairs: DefinitionPairs, dev_fraction: float, seed: int = 0) -> tuple[DefinitionPairs, DefinitionPairs]:
    """Split into (train, dev) by *word*: every definition of a dev word goes to dev."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    distinct = sorted(set(pairs.words))
    rng = np.random.default_rng(seed)
    n_dev = max(1, int(round(dev_fraction * len(distinct))))
    dev_words = set(rng.choice(distinct, size=n_dev, replace=False).tolist())
    tr = [(d, w) for d, w in zip(pairs.definitions, pairs.words) if w not in dev_words]
    dv = [(d, w) for d, w in zip(pairs.definitions, pairs.words) if w in dev_words]
    return (DefinitionPairs([d for d, _ in tr], [w for _, w in tr]),
            DefinitionPairs([d for d, _ in dv], [w for _, w in dv]))


def _loss_class():
    import torch

    class _DefSentLoss(torch.nn.Module):
        """Cross-entropy of the defined word over a frozen word-vector output layer.

        ``forward(features, labels)`` follows sentence-transformers' loss interface (a list with
        one tokenised batch of definitions; ``labels`` index rows of ``targets``). Trained: the
        encoder and ``projection``; frozen: ``targets`` (a buffer, so no optimiser sees it).
        """

        def __init__(self, model, targets: np.ndarray, temperature: float = 0.05, seed: int = 0):
            super().__init__()
            if temperature <= 0:
                raise ValueError(f"temperature must be positive, got {temperature}")
            self.model = model
            dim = model.get_sentence_embedding_dimension()
            torch.manual_seed(seed)
            self.projection = torch.nn.Linear(dim, targets.shape[1])
            t = torch.as_tensor(np.asarray(targets, dtype=np.float32))
            self.register_buffer("targets", torch.nn.functional.normalize(t, dim=1))
            self.temperature = temperature

        def logits(self, embeddings):
            z = torch.nn.functional.normalize(self.projection(embeddings), dim=1)
            return z @ self.targets.T / self.temperature

        def forward(self, features, labels):
            u = self.model(features[0])["sentence_embedding"]
            return torch.nn.functional.cross_entropy(self.logits(u), labels.long())

    return _DefSentLoss


def DefSentLoss(model, targets: np.ndarray, temperature: float = 0.05, seed: int = 0):  # noqa: N802
    """A new DefSent loss over ``model`` with the frozen output layer ``targets`` (one row per word)."""
    return _loss_class()(model, targets, temperature=temperature, seed=seed)


def word_accuracy(loss, definitions: Sequence[str], labels: Sequence[int], k: int = 10, batch_size: int = 256) -> float:
    """Share of ``definitions`` whose word (row ``labels[i]`` of the targets) ranks in the top ``k``."""
    import torch

    model = loss.model
    hits = 0
    with torch.no_grad():
        for i in range(0, len(definitions), batch_size):
            u = torch.as_tensor(model.encode(list(definitions[i:i + batch_size]), convert_to_numpy=True,
                                             show_progress_bar=False))
            top = loss.logits(u.to(loss.targets.device)).topk(k, dim=1).indices.cpu().numpy()
            hits += int(sum(labels[i + j] in top[j] for j in range(len(top))))
    return hits / max(1, len(definitions))
