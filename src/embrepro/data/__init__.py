"""Data sets, one module per family; this package re-exports their public names.

* :mod:`embrepro.data.manifest`: the manifest (``data/manifest.yml``), finding, downloading and
  verifying files (:func:`fetch`), :class:`DataError`, the data-set table for a chapter (:func:`describe`).
* :mod:`embrepro.data.corpora`: the book's tokeniser, the Gutenberg corpus and its cuts, IMDB reviews.
* :mod:`embrepro.data.benchmarks`: STS-B, SICK-R, word-similarity sets, analogy files, and
  retrieval test collections in the BEIR layout (SciFact, LIMIT-small).
* :mod:`embrepro.data.lexicons`: retrofitting lexicons, WordNet 3.0 synsets, is-a hierarchies and
  their closures.

Chapters write ``from embrepro import data`` and call ``data.load_stsb("test")``,
``data.gutenberg_corpus(2_000_000)``, ... Every file is checked against its sha256 from the
manifest; what the book computes from the files is cached as derived files (:mod:`embrepro.derived`),
checked on every read. Within this package, modules import each other by their own names
(``from embrepro.data.manifest import fetch``), never through this ``__init__``.
"""

from embrepro.data.benchmarks import (NLI_LABELS, SICK_SEMEVAL_FILES, WORD_SIMILARITY_FILES, NLIPairs, RetrievalData,
                                      SentencePairs, WordPairs, analogy_file, load_limit_small, load_nli,
                                      load_scifact, load_sick, load_stsb,
                                      load_word_similarity)
from embrepro.data.corpora import (CORPUS_FORMAT, IMDB_FORMAT, CorpusFile, GutenbergSentences, LabelledDocuments,
                                   gutenberg_corpus, gutenberg_sentences, load_imdb, strip_gutenberg_boilerplate,
                                   tokenize, tokenize_review, tokenize_sentences)
from embrepro.data.lexicons import (NOUN_CLOSURE_FORMAT, RETROFIT_LEXICON_FILES, WORDNET_DATA_FILES, WORDNET_RELATIONS,
                                    Hierarchy, Lexicon, Synset, lexicon_from_lines, load_mammal_closure,
                                    load_noun_closure, load_retrofit_lexicon, load_wordnet_lexicon,
                                    load_wordnet_synsets, parse_wordnet_data_line)
from embrepro.data.manifest import (DataError, Dataset, FileEntry, Manifest, dataset_fingerprints, describe, fetch,
                                    manifest, sha256_file)

__all__ = [
    # manifest and fetching
    "DataError", "Dataset", "FileEntry", "Manifest", "dataset_fingerprints", "describe", "fetch", "manifest",
    "sha256_file",
    # corpora
    "CORPUS_FORMAT", "IMDB_FORMAT", "CorpusFile", "GutenbergSentences", "LabelledDocuments", "gutenberg_corpus",
    "gutenberg_sentences", "load_imdb", "strip_gutenberg_boilerplate", "tokenize", "tokenize_review",
    "tokenize_sentences",
    # benchmarks
    "NLI_LABELS", "NLIPairs", "SICK_SEMEVAL_FILES", "WORD_SIMILARITY_FILES", "RetrievalData", "SentencePairs",
    "WordPairs", "analogy_file",
    "load_limit_small", "load_nli", "load_scifact", "load_sick", "load_stsb", "load_word_similarity",
    # lexicons and WordNet
    "NOUN_CLOSURE_FORMAT", "RETROFIT_LEXICON_FILES", "WORDNET_DATA_FILES", "WORDNET_RELATIONS", "Hierarchy", "Lexicon",
    "Synset", "lexicon_from_lines", "load_mammal_closure", "load_noun_closure", "load_retrofit_lexicon",
    "load_wordnet_lexicon", "load_wordnet_synsets", "parse_wordnet_data_line",
]
