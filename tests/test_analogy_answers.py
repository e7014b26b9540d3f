"""Per-question analogy answers line up across vector sets and agree with the accuracies."""

import numpy as np
import pytest
from gensim.models import KeyedVectors

from embrepro import evaluation


def vectors(words: dict[str, np.ndarray]) -> KeyedVectors:
    kv = KeyedVectors(vector_size=len(next(iter(words.values()))))
    kv.add_vectors(list(words), np.array(list(words.values()), dtype=np.float32))
    return kv


def capitals(exact: bool, seed: int = 1) -> KeyedVectors:
    countries = ["greece", "norway", "france", "spain", "italy", "germany"]
    cities = ["athens", "oslo", "paris", "madrid", "rome", "berlin"]
    rng = np.random.default_rng(seed)
    offset = rng.normal(size=16)
    words = {c: rng.normal(size=16) for c in countries}
    words.update({city: (words[c] + offset if exact else rng.normal(size=16)) for c, city in zip(countries, cities)})
    return vectors(words)


def test_answers_agree_with_accuracy_and_line_up_across_vector_sets():
    good, bad = capitals(exact=True), capitals(exact=False)
    a = evaluation.analogy_answers(good, "google", restrict_vocab=100)
    b = evaluation.analogy_answers(bad, "google", restrict_vocab=100)
    assert list(a.columns) == ["section", "kind", "question", "correct"]
    assert len(a) >= 30 and not a.duplicated(["section", "question"]).any()
    assert a.question.tolist() == b.question.tolist()          # same vocabulary, same questions, same order
    assert a.correct.all() and not b.correct.all()
    for vec, answers in ((good, a), (bad, b)):
        acc = evaluation.analogy_accuracy(vec, "google", restrict_vocab=100)
        sem = answers[answers.kind == "semantic"].correct
        assert 100 * sem.mean() == pytest.approx(acc["semantic"])
        assert len(answers) == acc["questions_seen"]


def test_answers_are_empty_when_no_question_can_be_asked():
    out = evaluation.analogy_answers(vectors({"zzz": np.ones(4), "yyy": np.zeros(4)}), "google", restrict_vocab=10)
    assert len(out) == 0 and list(out.columns) == ["section", "kind", "question", "correct"]


def test_answers_on_a_question_file_given_by_path(tmp_path):
    # A subset file (as word2vec writes for GloVe): one row per question, "Total accuracy" not counted again.
    source = tmp_path / "subset.txt"
    source.write_text(": capital-common-countries\nathens greece oslo norway\nrome italy paris france\n"
                      ": gram3-comparative\nathens greece madrid spain\n")
    out = evaluation.analogy_answers(capitals(exact=True), restrict_vocab=100, path=source)
    assert out.question.tolist() == ["ATHENS GREECE OSLO NORWAY", "ROME ITALY PARIS FRANCE",
                                     "ATHENS GREECE MADRID SPAIN"]
    assert out.kind.tolist() == ["semantic", "semantic", "syntactic"] and out.correct.all()
