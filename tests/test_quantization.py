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


@pytest.fixture(scope="module")
def skewed():
    """Dimensions of very different widths and centres: raw int8 codes then rank differently from
    dequantised rows (with equal ranges everywhere the two would agree up to an affine map)."""
    rng = np.random.default_rng(1)
    scale, shift = rng.uniform(0.2, 3.0, size=32), rng.normal(0, 0.5, size=32)
    docs = (rng.normal(size=(600, 32)) * scale + shift).astype(np.float32)
    queries = (docs[:40] + 0.3 * rng.normal(size=(40, 32)) * scale).astype(np.float32)
    return docs, queries, qz.int8_ranges(docs[300:])  # ranges from half the rows: the rest can clip


def test_int8_codes_by_hand():
    ranges = np.array([[0.0, -1.0, 0.5], [255.0, 1.0, 0.5]], dtype=np.float32)  # steps 1, 2/255, and 0 -> 1
    x = np.array([[3.7, 0.0, 0.5], [300.0, -5.0, 2.25], [-1.0, 1.0, 0.0]], dtype=np.float32)
    # 3.7 -> bucket 3; (0 + 1) / (2/255) = 127.5 -> 127; (0.5 - 0.5) / 1 = 0 -> 0; then minus 128
    # 300 -> clipped to 255; -5 -> clipped to 0; (2.25 - 0.5) / 1 = 1.75 -> 1
    # -1 -> clipped to 0; 0 -> 0 (zero-width range, step 1); the range's maximum 1 lands in bucket
    # 254, not 255: in float32, 2 / (2/255) is just below 255 (sentence-transformers does the same)
    expected = np.array([[3, 127, 0], [255, 0, 1], [0, 254, 0]]) - 128
    assert np.array_equal(qz.quantize_int8(x, ranges), expected)
    assert qz.quantize_int8(x, ranges).dtype == np.int8
    # dequantising gives each bucket's lower edge
    assert np.allclose(qz.dequantize_int8(expected.astype(np.int8), ranges)[0], [3.0, -1 + 127 * 2 / 255, 0.5], atol=1e-6)


def test_int8_codes_equal_sentence_transformers_quantize_embeddings(skewed):
    from sentence_transformers.util.quantization import quantize_embeddings

    docs, queries, ranges = skewed
    ranges = ranges.copy()
    ranges[:, 5] = 0.25  # a zero-width dimension
    for x in (docs, queries, docs * 1.5):  # the last has many values outside the ranges
        ours = qz.quantize_int8(x, ranges)
        theirs = quantize_embeddings(x, precision="int8", ranges=ranges)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    assert np.any(qz.quantize_int8(docs * 1.5, ranges) == 127) and np.any(qz.quantize_int8(docs * 1.5, ranges) == -128)


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


@pytest.mark.parametrize("scale", [1.0, 0.01])  # 0.01: values as small as a unit-length 384-d vector's
def test_int8_float_query_scores_the_dequantised_rows(skewed, scale):
    docs, queries, _ = skewed
    docs, queries = docs * scale, queries * scale
    ranges = qz.int8_ranges(docs[300:])
    index = qz.Int8Index(docs, ranges).variant(query="float")
    scores, ids = index.search(queries, 5)
    exact = queries @ qz.dequantize_int8(index.codes, ranges).T
    assert np.array_equal(ids, np.argsort(-exact, axis=1, kind="stable")[:, :5])
    assert np.allclose(scores, np.take_along_axis(exact, ids, 1), rtol=1e-4, atol=1e-3 * scale ** 2)
    # and it is not the codes-against-codes ranking
    assert not np.array_equal(ids, qz.Int8Index(docs, ranges).search(queries, 5)[1])


def test_int8_rescoring_dequantises_as_sentence_transformers_does(skewed):
    """Rescoring every document (candidates = the whole corpus) isolates the rescoring step from
    the first-stage scan (sentence-transformers' faiss path scans uint8 codes, ours int8 codes)."""
    from sentence_transformers.util.quantization import quantize_embeddings, semantic_search_faiss

    docs, queries, ranges = skewed
    k, mult = 5, len(docs) // 5
    results, _ = semantic_search_faiss(queries, corpus_embeddings=quantize_embeddings(docs, "uint8", ranges=ranges),
                                       corpus_precision="uint8", ranges=ranges, top_k=k, rescore_multiplier=mult)
    st_ids = np.array([[hit["corpus_id"] for hit in r] for r in results])
    st_scores = np.array([[hit["score"] for hit in r] for r in results])
    scores, ids = qz.Int8Index(docs, ranges, rescore_multiplier=mult).search(queries, k)
    assert np.array_equal(ids, st_ids)
    assert np.allclose(scores, st_scores, rtol=1e-5, atol=1e-4)
    # the raw-code rescoring of the 2024 code is a different method, and this test tells them apart
    _, raw = qz.Int8Index(docs, ranges, rescore_multiplier=mult, rescore_against="codes").search(queries, k)
    assert np.mean(raw != st_ids) > 0.2


def test_binary_scores_are_minus_hamming_distances(toy):
    docs, queries, _ = toy
    scores, ids = qz.BinaryIndex(docs).search(queries, 3)
    hamming = ((queries[:, None, :] > 0) != (docs[None, :, :] > 0)).sum(-1)
    assert np.array_equal(-scores[:, 0], hamming.min(axis=1))
    assert np.array_equal(-scores, np.take_along_axis(hamming, ids, 1))


def test_binary_float_query_scores_the_bits_as_zero_one_vectors(skewed):
    docs, queries, _ = skewed
    index = qz.BinaryIndex(docs, query="float")
    scores, ids = index.search(queries, 5)
    bits = (docs > 0).astype(np.float32)
    exact = queries @ bits.T
    assert np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-4)
    assert np.allclose(np.take_along_axis(exact, ids, 1), scores, atol=1e-4)
    assert index.bytes_per_vector == docs.shape[1] / 8  # still one bit per dimension
    with pytest.raises(ValueError):
        qz.BinaryIndex(docs, rescore="bits", query="float")


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


def test_pq_quantized_query_meets_codes_with_codes(toy):
    docs, queries, _ = toy
    index = qz.PQIndex(docs, m=8, nbits=4, seed=0)
    recon = index._index.sa_decode(index._index.sa_encode(docs))
    q_hat = index._index.sa_decode(index._index.sa_encode(queries))
    scores, ids = index.variant(query="quantized").search(queries, 5)
    assert np.allclose(scores, np.take_along_axis(q_hat @ recon.T, ids, 1), atol=1e-4)
    assert np.allclose(scores[:, 0], (q_hat @ recon.T).max(axis=1), atol=1e-4)
    f_scores, _ = index.search(queries, 5)  # asymmetric: the float query itself
    assert np.allclose(f_scores[:, 0], (queries @ recon.T).max(axis=1), atol=1e-4)
    with pytest.raises(ValueError):
        index.variant(query="both")


def test_cross_fit_never_encodes_a_document_with_a_quantiser_fitted_on_it(toy):
    docs, queries, _ = toy
    seen = []

    def build(fit, encode):
        seen.append((fit, encode))
        return qz.FloatIndex(encode)

    index = qz.CrossFitIndex(docs, build, seed=3)
    a, b = index.parts
    assert len(set(a) & set(b)) == 0 and sorted(np.concatenate([a, b])) == list(range(len(docs)))
    (fit0, enc0), (fit1, enc1) = seen
    assert np.array_equal(enc0, docs[a]) and np.array_equal(fit0, docs[b])
    assert np.array_equal(enc1, docs[b]) and np.array_equal(fit1, docs[a])
    # merging the halves' lists by score gives the search over all documents (float rows: exact)
    _, exact = qz.FloatIndex(docs).search(queries, 7)
    assert np.array_equal(index.search(queries, 7)[1], exact)
    assert index.bytes_per_vector == 4 * docs.shape[1]
    other = qz.CrossFitIndex(docs, lambda fit, enc: qz.FloatIndex(enc), seed=4)
    assert not np.array_equal(other.parts[0], a)


def test_retention_rule_can_fail():
    from embrepro.claims import Outcome
    from embrepro.stats import Interval

    rule = qz.retention_rule(90.79, 3.0, "test")
    assert rule.judge(Interval(91.0, 89.0, 93.0)) == Outcome.REPRODUCED
    assert rule.judge(Interval(97.6, 94.0, 101.1)) == Outcome.NOT_REPRODUCED  # clearly above the band
    assert rule.judge(Interval(80.0, 76.5, 83.5)) == Outcome.NOT_REPRODUCED  # clearly below
    assert rule.judge(Interval(92.0, 88.5, 95.5)) == Outcome.INCONCLUSIVE  # wider than the band


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
