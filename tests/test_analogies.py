"""The batched 3CosAdd analogy scorer answers exactly as gensim's evaluate_word_analogies."""

import numpy as np
from gensim.models import KeyedVectors

from embrepro import data, evaluation


def unit(v):
    return v / np.linalg.norm(v)


def test_batched_analogies_match_gensim_question_by_question():
    path = data.analogy_file("google")
    lines = [line.lower().split() for line in open(path, encoding="utf-8") if not line.startswith(":")]
    vocab = list(dict.fromkeys(w for line in lines for w in line))[:400]
    rng = np.random.default_rng(3)
    vectors = {w: rng.normal(size=24) for w in vocab}
    offset = rng.normal(size=24)
    for capital, country, _, _ in lines[:506]:  # capital-common-countries: country = capital + offset + noise
        if capital in vectors and country in vectors:
            vectors[country] = vectors[capital] + offset + rng.normal(scale=0.2, size=24)
    # "Baghdad", a rarer case variant of a question word, sits exactly on the 3CosAdd target of
    # "athens greece baghdad iraq": gensim must skip it (it is the question's own word) and answer iraq.
    target = unit(vectors["greece"]) + unit(vectors["baghdad"]) - unit(vectors["athens"])
    variants = {"Baghdad": (40, target), "Iraq": (1, vectors["iraq"] + rng.normal(scale=0.3, size=24)),
                "Greece": (5, vectors["greece"] + rng.normal(scale=0.3, size=24))}
    keys = list(vocab)
    for word, (position, vector) in variants.items():
        keys.insert(position, word)
        vectors[word] = vector
    kv = KeyedVectors(vector_size=24)
    kv.add_vectors(keys, np.array([vectors[k] for k in keys], dtype=np.float32))

    restrict = 350  # some questions fall outside the restricted vocabulary
    ours = evaluation._analogy_sections(kv, path, restrict)
    _, ref = kv.evaluate_word_analogies(str(path), restrict_vocab=restrict, case_insensitive=True)
    ref = [s for s in ref if s["section"] != "Total accuracy"]
    assert [s["section"] for s in ours] == [s["section"] for s in ref]
    for mine, theirs in zip(ours, ref):
        assert mine["correct"] == theirs["correct"], mine["section"]
        assert mine["incorrect"] == theirs["incorrect"], mine["section"]
    assert ("ATHENS", "GREECE", "BAGHDAD", "IRAQ") in ours[0]["correct"]
    assert len(ours[0]["correct"]) > 100 and sum(len(s["incorrect"]) for s in ours) > 0
