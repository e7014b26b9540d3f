import numpy as np
import pytest

pytest.importorskip("faiss")

from embrepro import quantization as qz  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(600, 32)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = (docs[:40] + 0.1 * rng.normal(size=(40, 32))).astype(np.float32)
    return docs, queries, qz.int8_ranges(docs)


def test_int8_codes_are_stored_as_they_are_and_searched_as_integer_dot_products(toy):
    docs, queries, ranges = toy
    index = qz.Int8Index(docs, ranges)
    scores, ids = index.search(queries, 5)
    q = qz.quantize_int8(queries, ranges).astype(np.int64)
    exact = q @ index.codes.astype(np.int64).T
    assert np.array_equal(scores[:, 0], exact.max(axis=1))
    assert np.array_equal(np.sort(exact, axis=1)[:, ::-1][:, :5], scores)
    # dequantising lands within one bucket of the original value
    back = qz.dequantize_int8(index.codes, ranges)
    step = (ranges[1] - ranges[0]) / 255
    assert np.all(docs - back >= -1e-6) and np.all(docs - back <= step + 1e-6)


def test_binary_scores_are_minus_hamming_distances(toy):
    docs, queries, _ = toy
    scores, ids = qz.BinaryIndex(docs).search(queries, 3)
    hamming = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(-1)
    assert np.array_equal(-scores[:, 0], hamming.min(axis=1))
    assert np.array_equal(-scores, np.take_along_axis(hamming, ids, 1))


def test_bit_rescoring_matches_sentence_transformers_semantic_search_faiss(toy):
    from sentence_transformers.util.quantization import semantic_search_faiss

    docs, queries, _ = toy
    _, ids = qz.BinaryIndex(docs, rescore="bits", rescore_multiplier=4).search(queries, 5)
    results, _ = semantic_search_faiss(queries, corpus_embeddings=qz.quantize_binary(docs),
                                       corpus_precision="ubinary", top_k=5, rescore_multiplier=4)
    assert np.array_equal(ids, np.array([[hit["corpus_id"] for hit in r] for r in results]))


def test_rescoring_all_candidates_with_floats_is_exact_search(toy):
    docs, queries, ranges = toy
    _, exact = qz.FloatIndex(docs).search(queries, 5)
    _, rescored = qz.BinaryIndex(docs, rescore="float32", rescore_multiplier=len(docs) // 5).search(queries, 5)
    assert np.array_equal(exact, rescored)
    _, int8_only = qz.Int8Index(docs, ranges).search(queries, 5)
    _, int8_rescored = qz.Int8Index(docs, ranges, rescore_multiplier=4).search(queries, 5)
    assert qz.topk_agreement(int8_rescored, exact) >= qz.topk_agreement(int8_only, exact)


def test_measured_bytes_per_vector(toy):
    docs, _, ranges = toy
    d = docs.shape[1]
    assert qz.FloatIndex(docs).bytes_per_vector == 4 * d
    assert qz.FloatIndex(docs, "float16").bytes_per_vector == 2 * d
    assert qz.Int8Index(docs, ranges).bytes_per_vector == d
    binary = qz.BinaryIndex(docs, rescore="int8", ranges=ranges)
    assert binary.bytes_per_vector == d / 8 and binary.extra_bytes_per_vector == d
    pq = qz.PQIndex(docs, m=8, nbits=4, seed=0)
    assert pq.bytes_per_vector == 4 and pq.fixed_bytes > 8 * 16 * (d // 8) * 4  # the codebooks


def test_pq_seed_changes_the_codebooks_and_is_reproducible(toy):
    docs, queries, _ = toy
    a, b, c = (qz.PQIndex(docs, m=8, nbits=4, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.search(queries, 5)[1], b.search(queries, 5)[1])
    import faiss

    cents = [faiss.vector_to_array(x._index.pq.centroids) for x in (a, b, c)]
    assert np.array_equal(cents[0], cents[1]) and not np.array_equal(cents[0], cents[2])


def test_best_family_range_counts_clear_and_possible_winners():
    from embrepro.stats import Interval

    clear = Interval(2.0, 1.0, 3.0)   # the leader is clearly ahead of this family
    tie = Interval(0.5, -1.0, 2.0)    # this family cannot be ruled out as best
    # one family clearly best everywhere: the claim "no single best" is contradicted
    one = qz.best_family_range({48: "pq", 384: "pq"}, {48: {"binary": clear}, 384: {"int8": clear}})
    assert (one.estimate, one.low, one.high) == (1, 1, 1)
    # two families, each clearly best at one budget
    two = qz.best_family_range({48: "binary", 384: "pq"}, {48: {"pq": clear}, 384: {"binary": clear}})
    assert (two.estimate, two.low, two.high) == (2, 2, 2)
    # the same leader everywhere, but ties leave room for a second family: undecided
    open_ = qz.best_family_range({48: "pq", 96: "pq", 384: "pq"},
                                 {48: {"binary": tie}, 96: {"binary": clear}, 384: {"int8": tie}})
    assert (open_.estimate, open_.low, open_.high) == (1, 1, 3)
    with pytest.raises(ValueError):
        qz.best_family_range({}, {})
