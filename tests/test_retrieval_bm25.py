"""BM25 scoring pinned by a hand-computed case: Lucene's BM25 with Anserini's k1 = 0.9, b = 0.4.

The scores below were worked out by hand (the arithmetic is in the comments), not by calling a
formula in Python, so the test fails if the index swaps k1 and b, if bm25s is switched to another
variant (robertson, atire, bm25l, bm25+), or if the tokeniser stops dropping stop words or
stemming. Each of those mutations was tried and made this file fail.
"""

import pytest

from embrepro import retrieval


def _data(corpus: dict[str, str], queries: dict[str, str]) -> retrieval.RetrievalData:
    return retrieval.RetrievalData("bm25-by-hand", {d: {"title": "", "text": t} for d, t in corpus.items()},
                                   queries, {q: {} for q in queries})


# Four documents; no stop words, nothing a stemmer would change (stemmer off anyway).
#   d0 "apple apple banana"                 |d0| = 3
#   d1 "apple cherry"                       |d1| = 2
#   d2 "banana banana banana cherry date"   |d2| = 5
#   d3 "date elder"                         |d3| = 2
# N = 4, avgdl = (3 + 2 + 5 + 2) / 4 = 3.
# Lucene idf = ln(1 + (N - df + 0.5) / (df + 0.5)):
#   df = 2 (apple, banana, cherry, date): ln(1 + 2.5 / 2.5) = ln 2       = 0.693147
#   df = 1 (elder):                       ln(1 + 3.5 / 1.5) = ln(10 / 3) = 1.203973
# Length norm K(d) = k1 * (1 - b + b * |d| / avgdl) with k1 = 0.9, b = 0.4:
#   |d| = 3: 0.9 * (0.6 + 0.4)          = 0.90
#   |d| = 2: 0.9 * (0.6 + 0.4 * 2 / 3)  = 0.78
#   |d| = 5: 0.9 * (0.6 + 0.4 * 5 / 3)  = 1.14
# Term score = idf * tf / (tf + K(d))  (Lucene >= 8 leaves out the constant factor k1 + 1).
CORPUS = {"d0": "apple apple banana", "d1": "apple cherry", "d2": "banana banana banana cherry date",
          "d3": "date elder"}
QUERIES = {"q_fruit": "apple banana", "q_rare": "elder banana"}
EXPECTED = {
    # q_fruit = apple + banana
    #   d0: ln2 * (2 / (2 + 0.90) + 1 / (1 + 0.90)) = 0.693147 * (0.689655 + 0.526316) = 0.842847
    #   d1: ln2 * 1 / (1 + 0.78)                    = 0.693147 * 0.561798              = 0.389409
    #   d2: ln2 * 3 / (3 + 1.14)                    = 0.693147 * 0.724638              = 0.502280
    #   d3: shares no term: left out of the run
    "q_fruit": {"d0": 0.842847, "d2": 0.502280, "d1": 0.389409},
    # q_rare = elder + banana
    #   d3: ln(10/3) * 1 / (1 + 0.78) = 1.203973 * 0.561798 = 0.676389
    #   d2: ln2 * 3 / (3 + 1.14)                            = 0.502280
    #   d0: ln2 * 1 / (1 + 0.90)      = 0.693147 * 0.526316 = 0.364814
    "q_rare": {"d3": 0.676389, "d2": 0.502280, "d0": 0.364814},
}


def test_bm25_scores_are_lucene_bm25_computed_by_hand():
    data = _data(CORPUS, QUERIES)
    for run in (retrieval.bm25_run(data, k=4),  # the defaults must be Anserini's k1 = 0.9, b = 0.4
                retrieval.BM25Index(data).search(data.queries, k=4),
                retrieval.BM25Index(data, k1=0.9, b=0.4).search(data.queries, k=4)):
        for q, expected in EXPECTED.items():
            assert list(run[q]) == list(expected)  # the ranking, best first
            assert run[q] == pytest.approx(expected, abs=2e-6)


def test_bm25_parameters_reach_the_scores():
    # With k1 = 1.2, b = 0.75: K(|d| = 2) = 1.2 * (0.25 + 0.75 * 2 / 3) = 0.9, so
    # d3 for "elder" scores ln(10/3) * 1 / (1 + 0.9) = 1.203973 * 0.526316 = 0.633670.
    data = _data(CORPUS, {"q": "elder"})
    run = retrieval.BM25Index(data, k1=1.2, b=0.75).search(data.queries, k=4)
    assert run["q"] == pytest.approx({"d3": 0.633670}, abs=2e-6)


def test_bm25_tokeniser_drops_lucene_stop_words_and_porter_stems():
    # "the", "of", "and", "is" are among Lucene's 33 English stop words; "s" is a one-letter
    # token, which the tokeniser drops; Porter stems "cells" -> "cell", "running" -> "run",
    # "studies" -> "studi", "study" -> "studi".
    # Stemmed: d0 "cell run" (|d0| = 2), d1 "studi cell cell" (3), d2 "studi librari" (2), avgdl 7/3.
    # Query "the running of cells and studies" -> run, cell, studi.
    #   idf: run df 1 -> ln(1 + 2.5 / 1.5) = ln(8/3) = 0.980829; cell, studi df 2 -> ln(1 + 1.5 / 2.5) = ln 1.6
    #   = 0.470004.  K(2) = 0.9 * (0.6 + 0.4 * 2 / (7/3)) = 0.9 * 0.942857 = 0.848571;
    #   K(3) = 0.9 * (0.6 + 0.4 * 9 / 7) = 0.9 * 1.114286 = 1.002857.
    #   d0: 0.980829 / 1.848571 + 0.470004 / 1.848571 = 0.530588 + 0.254252 = 0.784840
    #   d1: 0.470004 * (2 / 3.002857 + 1 / 2.002857) = 0.470004 * (0.666032 + 0.499287) = 0.547704
    #   d2: 0.470004 / 1.848571                                                           = 0.254252
    corpus = {"d0": "The cells is running", "d1": "Study of cells and the cell's",
              "d2": "studies library"}
    data = _data(corpus, {"q": "the running of cells and studies"})
    run = retrieval.bm25_run(data, k=3, stemmer="porter")
    assert run["q"] == pytest.approx({"d0": 0.784840, "d1": 0.547704, "d2": 0.254252}, abs=2e-6)
    assert list(run["q"]) == ["d0", "d1", "d2"]
    # Without the stemmer, "cells" and "cell", "studies" and "study" no longer match.
    unstemmed = retrieval.bm25_run(data, k=3)
    assert set(unstemmed["q"]) == {"d0", "d1", "d2"} and list(unstemmed["q"])[0] == "d0"
    assert unstemmed["q"] != pytest.approx(run["q"], abs=1e-3)
    # The original Porter algorithm (Lucene's PorterStemFilter) conflates "generated" and "general"
    # (both -> "gener"); Snowball's newer English stemmer would keep them apart.
    porter_only = _data({"d0": "general anaesthesia", "d1": "local anaesthesia"}, {"q": "generated"})
    assert list(retrieval.bm25_run(porter_only, k=2, stemmer="porter")["q"]) == ["d0"]


def test_bm25_stop_words_are_lucenes_english_set():
    import bm25s.stopwords

    lucene = {"a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
              "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
              "they", "this", "to", "was", "will", "with"}  # Lucene EnglishAnalyzer.ENGLISH_STOP_WORDS_SET
    assert set(bm25s.stopwords.STOPWORDS_EN) == lucene
