"""Benchmarks: sentence similarity, word similarity, analogies and retrieval test collections.

* :class:`SentencePairs`: STS-B (scores 0-5) and SICK-R (1-5), two sentence lists and a gold score
  per pair, read from the tab-separated files of their releases.
* :class:`WordPairs`: word-similarity sets (WS-353, SimLex-999, MEN, RW, ...) as lower-cased word
  pairs with a human score, from the ``EN-*.txt`` files (``word1 word2 score`` per line).
* :func:`analogy_file`: analogy questions in word2vec's format (``: section`` lines, then
  ``a b c d``), the format gensim's ``evaluate_word_analogies`` reads.
* :class:`RetrievalData`: a test collection in the BEIR layout: ``corpus`` (doc id -> {"title",
  "text"}), ``queries`` (query id -> text) and ``qrels`` (query id -> {doc id: relevance}), from
  SciFact and LIMIT-small (``corpus.jsonl``, ``queries.jsonl`` and the qrels as TSV or JSONL).

Files come through :func:`embrepro.data.manifest.fetch`, so each is checked against its sha256;
the MSR analogy file converted into word2vec's format is a derived file (:mod:`embrepro.derived`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from embrepro import derived
from embrepro.data.manifest import fetch, sha256_file
from embrepro.paths import cache_dir

__all__ = ["NLI_LABELS", "NLIPairs", "RetrievalData", "SICK_SEMEVAL_FILES", "SentencePairs", "WORD_SIMILARITY_FILES", "WordPairs",
           "analogy_file", "load_limit_small", "load_nli", "load_scifact", "load_sick", "load_stsb",
           "load_word_similarity"]


@dataclass
class SentencePairs:
    """Sentence pairs with a gold similarity score (STS-B, SICK-R)."""

    name: str
    split: str
    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)

    def head(self, n: int) -> "SentencePairs":
        return SentencePairs(self.name, self.split, self.sentences1[:n], self.sentences2[:n], self.scores[:n])

    def sample(self, n: int, seed: int = 0) -> "SentencePairs":
        """A seeded random sample of ``n`` pairs, kept in file order; all pairs when ``n`` is 0 or at least their number.

        The pairs are ``numpy.random.default_rng(seed).choice(len(self), n, replace=False)``, sorted:
        a sample rather than :meth:`head`, because STS-B's files are ordered by genre.
        """
        import numpy as np

        if n < 0:
            raise ValueError(f"a sample needs n >= 0 pairs (0 for all), got {n}")
        if not n or n >= len(self):
            return self
        idx = sorted(np.random.default_rng(seed).choice(len(self), n, replace=False).tolist())
        return SentencePairs(self.name, self.split, [self.sentences1[i] for i in idx],
                             [self.sentences2[i] for i in idx], [self.scores[i] for i in idx])


def load_stsb(split: str = "test") -> SentencePairs:
    """STS Benchmark (Cer et al. 2017): scores 0-5. Splits: train 5,749, dev 1,500, test 1,379."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"STS-B split must be train, dev or test, not {split!r}")
    path = fetch("stsb", f"sts-{split}.csv")
    s1, s2, scores = [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.rstrip("\n").split("\t")
            scores.append(float(cols[4]))
            s1.append(cols[5])
            s2.append(cols[6])
    return SentencePairs("STS-B", split, s1, s2, scores)


SICK_SEMEVAL_FILES = {"train": "SICK_train.txt", "trial": "SICK_trial.txt", "test": "SICK_test_annotated.txt"}


def load_sick(split: str = "all") -> SentencePairs:
    """SICK relatedness (Marelli et al. 2014), scores 1-5, from the SemEval-2014 Task 1 release.

    Splits: ``train`` 4,500, ``trial`` 500, ``test`` 4,927 pairs, or ``all`` 9,927 pairs; ``all`` is
    what MTEB's SICK-R evaluates (and what its published scores refer to). ``full`` is the
    9,840-pair SICK release (SICK.txt), for comparison.
    """
    if split not in (*SICK_SEMEVAL_FILES, "all", "full"):
        raise ValueError(f"SICK split must be one of train, trial, test, all, full, not {split!r}")
    if split == "full":  # the 9,840-pair SICK release, not the SemEval split
        names = ["SICK.txt"]
    else:
        names = list(SICK_SEMEVAL_FILES.values()) if split == "all" else [SICK_SEMEVAL_FILES[split]]
    s1, s2, scores = [], [], []
    for name in names:
        with open(fetch("sick", name), encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                s1.append(row["sentence_A"])
                s2.append(row["sentence_B"])
                scores.append(float(row["relatedness_score"]))
    return SentencePairs("SICK-R", split, s1, s2, scores)


NLI_LABELS = ("contradiction", "entailment", "neutral")


@dataclass
class NLIPairs:
    """Premise-hypothesis pairs with an entailment label (one of :data:`NLI_LABELS`)."""

    name: str
    split: str
    premises: list[str]
    hypotheses: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def label_ids(self) -> list[int]:
        """Labels as integers, in the order of :data:`NLI_LABELS`."""
        return [NLI_LABELS.index(label) for label in self.labels]


def load_nli(split: str = "snli_dev") -> NLIPairs:
    """NLI pairs that the offline mirror holds (no SNLI or MultiNLI training split is available).

    ``snli_dev`` (9,842) and ``snli_test`` (9,824): SNLI 1.0 (Bowman et al. 2015), tokenised
    InferSent-style files of the e-SNLI release. ``sick_train`` (4,500): the entailment judgments of
    the SemEval-2014 SICK training split. Labels are lower-cased (contradiction, entailment, neutral).
    """
    if split in ("snli_dev", "snli_test"):
        part = split.split("_")[1]
        columns = []
        for stem in ("s1", "s2", "labels"):
            with open(fetch("nli_snli_devtest", f"{stem}.{part}"), encoding="utf-8") as fh:
                columns.append([line.rstrip("\n").strip() for line in fh])
        if len({len(c) for c in columns}) != 1:
            raise ValueError(f"SNLI {part}: the premise, hypothesis and label files differ in length")
        premises, hypotheses, labels = columns
    elif split == "sick_train":
        premises, hypotheses, labels = [], [], []
        with open(fetch("sick", SICK_SEMEVAL_FILES["train"]), encoding="utf-8") as fh:
            for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                premises.append(row["sentence_A"])
                hypotheses.append(row["sentence_B"])
                labels.append(row["entailment_judgment"].lower())
    else:
        raise ValueError(f"NLI split must be snli_dev, snli_test or sick_train, not {split!r}")
    unknown = sorted(set(labels) - set(NLI_LABELS))
    if unknown:
        raise ValueError(f"NLI {split}: unknown labels {unknown}")
    return NLIPairs("SNLI" if split.startswith("snli") else "SICK-E", split, premises, hypotheses, labels)


WORD_SIMILARITY_FILES = {
    "ws353": "EN-WS-353-ALL.txt",
    "ws353_sim": "EN-WS-353-SIM.txt",
    "ws353_rel": "EN-WS-353-REL.txt",
    "simlex999": "EN-SIMLEX-999.txt",
    "men": "EN-MEN-TR-3k.txt",
    "rw": "EN-RW-STANFORD.txt",
    "mc30": "EN-MC-30.txt",
    "rg65": "EN-RG-65.txt",
    "mturk287": "EN-MTurk-287.txt",
    "mturk771": "EN-MTurk-771.txt",
    "simverb3500": "EN-SimVerb-3500.txt",
    "yp130": "EN-YP-130.txt",
    "verb143": "EN-VERB-143.txt",
}


@dataclass
class WordPairs:
    """Word pairs with a human similarity score (WS-353, SimLex-999, MEN, RW, ...)."""

    name: str
    pairs: list[tuple[str, str]]
    scores: list[float]

    def __len__(self) -> int:
        return len(self.scores)


def load_word_similarity(name: str) -> WordPairs:
    """One word-similarity set by short name (see ``WORD_SIMILARITY_FILES``), lower-cased."""
    if name not in WORD_SIMILARITY_FILES:
        raise ValueError(f"Unknown word-similarity set {name!r}; known: {', '.join(WORD_SIMILARITY_FILES)}")
    path = fetch("wordsim", WORD_SIMILARITY_FILES[name])
    pairs, scores = [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            cols = line.split()
            if len(cols) >= 3:
                pairs.append((cols[0].lower(), cols[1].lower()))
                scores.append(float(cols[2]))
    return WordPairs(name, pairs, scores)


def analogy_file(name: str = "google") -> Path:
    """Path of an analogy question file in word2vec's format (``: section`` lines, then ``a b c d``).

    ``google`` is questions-words.txt (19,544 questions: 5 semantic, 9 syntactic sections);
    ``msr`` is the MSR syntactic set (8,000), converted once into the same format in the cache
    (a derived file, rebuilt if it is damaged).
    """
    if name == "google":
        return fetch("analogy", "questions-words.txt")
    if name == "msr":
        source = fetch("analogy", "msr.csv")
        source_sha = sha256_file(source)

        def build(tmp: Path) -> None:
            by_type: dict[str, list[str]] = {}
            with open(source, encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    by_type.setdefault(f"gram-msr-{row['type']}", []).append(
                        " ".join(row[k] for k in ("word1", "word2", "word3", "target")))
            tmp.write_text("".join(f": {t}\n" + "\n".join(rows) + "\n" for t, rows in sorted(by_type.items())),
                           encoding="utf-8")

        target = cache_dir("derived") / f"msr-analogies-{source_sha[:12]}.txt"
        return derived.ensure(target, derived.inputs_key("msr analogies", source_sha), build).path
    raise ValueError(f"Unknown analogy set {name!r}; known: google, msr")


# --------------------------------------------------------------------------------------------
# Retrieval test collections in the BEIR layout
# --------------------------------------------------------------------------------------------

@dataclass
class RetrievalData:
    """A test collection in the BEIR layout: documents, queries and graded relevance judgements."""

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def doc_ids(self) -> list[str]:
        return list(self.corpus)

    def doc_texts(self, with_title: bool = True) -> list[str]:
        """Document texts in corpus order; the title is prepended as BEIR does ("title text")."""
        return [(f"{d['title']} {d['text']}" if with_title and d.get("title") else d["text"]).strip()
                for d in self.corpus.values()]

    def judged(self) -> "RetrievalData":
        """Only the queries that have at least one relevant document."""
        queries = {q: t for q, t in self.queries.items() if any(r > 0 for r in self.qrels.get(q, {}).values())}
        return RetrievalData(self.name, self.corpus, queries, {q: self.qrels[q] for q in queries})

    def subset(self, n_docs: int) -> "RetrievalData":
        """The first ``n_docs`` documents, and the queries with a relevant document among them.

        The qrels keep only those documents, so metrics on the subset are computed as if the
        collection were just these documents (a quick, smaller test collection).
        """
        corpus = dict(list(self.corpus.items())[:n_docs])
        qrels = {q: kept for q, rel in self.qrels.items()
                 if (kept := {d: r for d, r in rel.items() if d in corpus}) and any(r > 0 for r in kept.values())}
        queries = {q: t for q, t in self.queries.items() if q in qrels}
        return RetrievalData(f"{self.name} (first {len(corpus):,} documents)", corpus, queries, qrels)

    def sample(self, n_docs: int, seed: int = 0, n_queries: int | None = None) -> "RetrievalData":
        """A smaller collection that keeps the judged queries answerable: every document relevant to
        a kept query, plus random other documents up to ``n_docs`` (corpus order is kept).

        Queries (judged ones, in order, at most ``n_queries``) are kept while their relevant
        documents still fit in ``n_docs``; the qrels are those of the kept queries.
        """
        import numpy as np

        judged = self.judged()
        keep_q, relevant = [], {}
        for q in judged.queries:
            if n_queries is not None and len(keep_q) >= n_queries:
                break
            new = {d: None for d, r in judged.qrels[q].items() if r > 0 and d in self.corpus}
            if len(relevant | new) > n_docs:
                break
            keep_q.append(q)
            relevant |= new
        rest = [d for d in self.corpus if d not in relevant]
        rng = np.random.default_rng(seed)
        extra = rng.choice(len(rest), size=min(n_docs - len(relevant), len(rest)), replace=False)
        chosen = set(relevant) | {rest[i] for i in extra}
        corpus = {d: v for d, v in self.corpus.items() if d in chosen}
        qrels = {q: {d: r for d, r in judged.qrels[q].items() if d in corpus} for q in keep_q}
        return RetrievalData(f"{self.name} (sample of {len(corpus):,} documents)", corpus,
                             {q: judged.queries[q] for q in keep_q}, qrels)


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_scifact() -> RetrievalData:
    """SciFact (Wadden et al. 2020) in the BEIR layout: 5,183 abstracts, 300 test queries, 339 qrels."""
    corpus = {d["_id"]: {"title": d.get("title", ""), "text": d["text"]}
              for d in _read_jsonl(fetch("beir/scifact", "beir_format/corpus.jsonl"))}
    queries = {q["_id"]: q["text"] for q in _read_jsonl(fetch("beir/scifact", "beir_format/queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = {}
    with open(fetch("beir/scifact", "beir_format/qrels/test.tsv"), encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return RetrievalData("SciFact", corpus, queries, qrels)


def load_limit_small() -> RetrievalData:
    """LIMIT-small (Weller et al. 2025): 46 people and what they like, 1,000 'who likes X?' queries."""
    corpus = {d["_id"]: {"title": d.get("title", ""), "text": d["text"]}
              for d in _read_jsonl(fetch("limit", "limit-small/corpus.jsonl"))}
    queries = {q["_id"]: q["text"] for q in _read_jsonl(fetch("limit", "limit-small/queries.jsonl"))}
    qrels: dict[str, dict[str, int]] = {}
    for row in _read_jsonl(fetch("limit", "limit-small/qrels.jsonl")):
        qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    return RetrievalData("LIMIT-small", corpus, queries, qrels)
