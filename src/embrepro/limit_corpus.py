"""LIMIT-style corpora ("Who likes X?") of any size, built the way the LIMIT paper built its own.

Weller et al. (2025) instantiate their theory with a deliberately simple retrieval task. Each
document is a person and the things they like ("Geneva Durben likes Quokkas, Tapirs, ... and Elm
Trees."); each query asks "Who likes X?" for one attribute X. The qrels are chosen to be *dense*:
a small pool of people is relevant, and the queries cover (nearly) every pair of them, which is the
hardest case for a single vector per document. Their notebook
(``code/generate_limit_dataset.ipynb`` in google-deepmind/limit) does this:

1. The pool: the smallest ``m`` with ``C(m, k) >= n_queries`` (46 people for 1,000 queries with
   ``k = 2``); query ``i`` gets the ``i``-th ``k``-subset of the pool in lexical order.
2. Every query gets its own attribute, used by no other query; each relevant person likes the
   attributes of all the queries they are relevant to.
3. Everyone is then topped up to ``items_per_doc`` attributes drawn from the attributes that no
   query asks about. People outside the pool (the distractors of the 50k-document LIMIT) like only
   such attributes, so a query's words appear in exactly its ``k`` relevant documents.

The attribute list and the names come from the offline mirror's LIMIT files (the 1,448 distinct
attributes that the LIMIT-small and LIMIT queries ask about, and the people's first names and
surnames), not from the notebook's longer list (about 1,850 attributes), so that no text is copied
from the repository's code. The full LIMIT corpus is not in the mirror; :func:`make_limit` builds a
corpus of the same construction at any size.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

from embrepro.data import fetch
from embrepro.retrieval import RetrievalData

QUERY_PREFIX, QUERY_SUFFIX = "Who likes ", "?"


@dataclass
class LimitVocabulary:
    """What LIMIT-style documents are made of: attributes, first names and surnames (sorted)."""

    attributes: list[str]
    first_names: list[str]
    surnames: list[str]


def _jsonl(dataset_file: str) -> list[dict]:
    with open(fetch("limit", dataset_file), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def limit_vocabulary() -> LimitVocabulary:
    """Attributes and names harvested from the LIMIT files of the data mirror.

    Attributes are those that the LIMIT-small and LIMIT queries ask about ("Who likes X?"); names
    are the relevant people of both (46 each), split into first name and surname.
    """
    attributes = set()
    for name in ("limit-small/queries.jsonl", "limit/queries.jsonl"):
        for q in _jsonl(name):
            text = q["text"]
            if not (text.startswith(QUERY_PREFIX) and text.endswith(QUERY_SUFFIX)):
                raise ValueError(f"unexpected LIMIT query {text!r} in {name}")
            attributes.add(text[len(QUERY_PREFIX):-len(QUERY_SUFFIX)])
    people = {d["_id"] for d in _jsonl("limit-small/corpus.jsonl")}
    people |= {r["corpus-id"] for r in _jsonl("limit/qrels.jsonl")}
    first = sorted({p.split(" ", 1)[0] for p in people})
    last = sorted({p.split(" ", 1)[1] for p in people if " " in p})
    return LimitVocabulary(sorted(attributes), first, last)


def dense_pool_size(n_queries: int, k: int = 2) -> int:
    """The smallest ``m`` with ``C(m, k) >= n_queries`` (46 for 1,000 queries and k = 2)."""
    m = k
    while math.comb(m, k) < n_queries:
        m += 1
    return m


def likes_sentence(name: str, items: list[str]) -> str:
    """"Ann Lee likes A, B and C." (the LIMIT document format)."""
    if len(items) == 1:
        return f"{name} likes {items[0]}."
    return f"{name} likes {', '.join(items[:-1])} and {items[-1]}."


@dataclass
class LimitLikes:
    """A LIMIT-style data set before it is written out as text.

    ``likes[p]`` lists what person ``p`` likes (shuffled), ``names[p]`` is their name,
    ``asked[i]`` is the attribute of query ``i`` and ``relevant[i]`` its ``k`` people (indices).
    People ``0 .. pool - 1`` form the dense pool; the rest are distractors.
    """

    likes: list[list[str]]
    names: list[str]
    asked: list[str]
    relevant: list[tuple[int, ...]]
    pool: int

    def to_retrieval(self, name: str = "") -> RetrievalData:
        corpus = {f"person_{p}": {"title": "", "text": likes_sentence(self.names[p], items)}
                  for p, items in enumerate(self.likes)}
        queries = {f"query_{i}": f"{QUERY_PREFIX}{item}{QUERY_SUFFIX}" for i, item in enumerate(self.asked)}
        qrels = {f"query_{i}": {f"person_{p}": 1 for p in subset} for i, subset in enumerate(self.relevant)}
        return RetrievalData(name or f"LIMIT-style ({len(corpus):,} documents)", corpus, queries, qrels)


def limit_likes(n_docs: int, n_queries: int = 1000, k: int = 2, items_per_doc: int = 45, seed: int = 0,
                vocabulary: LimitVocabulary | None = None) -> LimitLikes:
    """Who likes what in a LIMIT-style data set (the construction of the module docstring)."""
    vocab = vocabulary or limit_vocabulary()
    pool = dense_pool_size(n_queries, k)
    if n_docs < pool:
        raise ValueError(f"{n_queries} queries with k={k} need a pool of {pool} people, but n_docs={n_docs}")
    rng = random.Random(seed)
    attributes = list(vocab.attributes)
    rng.shuffle(attributes)
    if len(attributes) < n_queries + items_per_doc:
        raise ValueError(f"{len(attributes)} attributes cannot give {n_queries} queries their own attribute "
                         f"and leave {items_per_doc} for the documents")
    asked, unasked = attributes[:n_queries], attributes[n_queries:]

    likes: list[list[str]] = [[] for _ in range(n_docs)]
    relevant = _lexical_subsets(pool, k, n_queries)
    for item, subset in zip(asked, relevant):
        for p in subset:
            likes[p].append(item)
    names = []
    for items in likes:  # person by person, so a smaller n_docs gives exactly the first people of a larger one
        items.extend(rng.sample(unasked, max(0, items_per_doc - len(items))))
        rng.shuffle(items)
        names.append(f"{rng.choice(vocab.first_names)} {rng.choice(vocab.surnames)}")
    return LimitLikes(likes, names, asked, relevant, pool)


def make_limit(n_docs: int, n_queries: int = 1000, k: int = 2, items_per_doc: int = 45, seed: int = 0,
               vocabulary: LimitVocabulary | None = None) -> RetrievalData:
    """A LIMIT-style data set with ``n_docs`` documents, ``n_queries`` queries and ``k`` relevant each.

    Documents ``person_0`` ... ``person_{m-1}`` are the dense pool (see the module docstring), the
    rest are distractors; the corpus keeps that order, and the same arguments with a smaller
    ``n_docs`` (at least the pool size) give exactly the first ``n_docs`` documents of the larger
    corpus, with the same queries: a 5,000-document corpus is the start of the 50,000-document one,
    so their embeddings can be cached in shared blocks. Names may repeat (the mirror has 92 first names and 92 surnames); document
    ids are unique.
    """
    return limit_likes(n_docs, n_queries, k, items_per_doc, seed, vocabulary).to_retrieval()


def _lexical_subsets(m: int, k: int, count: int) -> list[tuple[int, ...]]:
    """The first ``count`` ``k``-subsets of ``range(m)`` in lexical order."""
    import itertools

    return list(itertools.islice(itertools.combinations(range(m), k), count))


def subcorpus(data: RetrievalData, doc_ids: list[str], name: str | None = None) -> RetrievalData:
    """The same queries and qrels over a subset of the documents (which must keep every relevant one)."""
    keep = set(doc_ids)
    missing = {d for rel in data.qrels.values() for d in rel if d not in keep}
    if missing:
        raise ValueError(f"the subset drops {len(missing)} relevant documents, e.g. {sorted(missing)[:3]}")
    return RetrievalData(name or data.name, {d: data.corpus[d] for d in doc_ids}, data.queries, data.qrels)
