"""Issue 12 (cold build): MiniLM encodings batched by length in word pieces, and muvera's token
vectors and sentence vectors from one forward pass."""

import hashlib

import numpy as np
import pytest

from embrepro import models, retrieval

TEXTS = ["A man is playing a guitar.",
         "Protein folding is driven by hydrophobic collapse of the chain in water, as many papers "
         "since the 1980s have argued, though the details remain debated.",
         "Stocks fell.", "The cat sat on the mat while the dog slept by the fire.", "Stocks fell.",
         "Hydrophobic collapse.", "Why?"]


def test_length_batches_sort_longest_first_and_respect_the_budget():
    lengths = np.array([3, 10, 7, 10, 1, 2, 7, 256, 40])
    batches = models.length_batches(lengths, max_tokens=20, max_texts=3)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(lengths)))            # every row once
    assert order.tolist() == [7, 8, 1, 3, 2, 6, 0, 5, 4]                  # longest first, ties in input order
    for b in batches:
        assert 1 <= len(b) <= 3
        assert len(b) == 1 or len(b) * lengths[b].max() <= 20              # padded pieces within budget
    assert [len(b) for b in batches] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        models.length_batches(lengths, max_tokens=0)


def test_an_embedding_cache_without_batching_keeps_its_old_key():
    cache = retrieval.EmbeddingCache("toy", "rev", lambda t: None)
    digest = hashlib.sha256(b"toy\nrev\nfp32\ndoc\n")
    for t in ("a", "b"):
        digest.update(t.encode())
        digest.update(b"\x00")
    assert cache.key(["a", "b"], "doc") == digest.hexdigest()[:32]
    other = retrieval.EmbeddingCache("toy", "rev", lambda t: None, batching="x")
    assert other.key(["a", "b"], "doc") != cache.key(["a", "b"], "doc")


@pytest.fixture(scope="module")
def encoder():
    return models.load_encoder(device="cpu")


def test_encode_by_length_matches_one_encode_call_to_float_rounding(encoder):
    from embrepro.precision import autocast

    with autocast("fp32"):
        plain = encoder.encode(TEXTS, batch_size=64, convert_to_numpy=True)
        ours = models.encode_by_length(encoder, TEXTS, max_tokens=40, max_texts=3)   # several batches
        both, sets = models.encode_by_length(encoder, TEXTS, tokens=True, max_tokens=40, max_texts=3)
        st_tokens = encoder.encode(TEXTS, output_value="token_embeddings", batch_size=64)
    assert ours.dtype == np.float32 and ours.shape == plain.shape
    assert np.abs(ours - plain).max() < 1e-5
    assert np.array_equal(both, ours)               # the token pass gives the very same sentence vectors
    np.testing.assert_array_equal(ours[2], ours[4])  # the same text twice in one list
    lengths = models.word_piece_lengths(encoder, TEXTS)
    for s, ref, n in zip(sets, st_tokens, lengths):
        assert s.shape == (n, 384) == tuple(ref.shape)
        assert np.abs(s - ref.numpy()).max() < 1e-4
    # mean pooling over the token vectors, normalised, is the sentence vector (MiniLM's pipeline)
    mean = np.stack([s.mean(axis=0) for s in sets])
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    assert np.abs(mean - ours).max() < 1e-5


def test_encode_by_length_shows_progress_in_texts_only_for_long_lists(encoder, capsys, monkeypatch):
    models.encode_by_length(encoder, TEXTS, max_tokens=40, max_texts=3)
    assert "encode" not in capsys.readouterr().err                     # 7 texts: no bar by default
    monkeypatch.setattr(models, "PROGRESS_TEXTS", 5)
    models.encode_by_length(encoder, TEXTS, max_tokens=40, max_texts=3)
    err = capsys.readouterr().err
    assert "encode" in err and "0/7" in err and "text/s" in err        # counted in texts
    models.encode_by_length(encoder, TEXTS, max_tokens=40, max_texts=3, progress=False)
    assert "encode" not in capsys.readouterr().err


def test_token_cache_fills_the_sentence_cache_with_what_it_would_compute(encoder, tmp_path, monkeypatch):
    from embrepro import multivector as mv

    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "a"))
    tokens = mv.minilm_token_cache(encoder, precision="fp32")
    sets = tokens.get(TEXTS, kind="doc")
    sv = retrieval.minilm_cache(encoder, precision="fp32")
    got = sv.get(TEXTS, kind="doc")
    assert (tokens.misses, sv.hits, sv.misses) == (1, 1, 0)   # served from the token pass
    assert len(sets) == len(TEXTS)
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "b"))  # a fresh cache: the sentence pass alone
    fresh = retrieval.minilm_cache(encoder, precision="fp32")
    alone = fresh.get(TEXTS, kind="doc")
    assert fresh.misses == 1 and np.array_equal(alone, got)   # bit for bit: order of chapters does not matter
    assert retrieval.minilm_cache(encoder, batch_size=64, precision="fp32").key(TEXTS, "doc") != fresh.key(TEXTS, "doc")
    with pytest.raises(ValueError):
        mv.minilm_token_cache(encoder, precision="fp32", sentence_cache=retrieval.minilm_cache(encoder, batch_size=64,
                                                                                              precision="fp32"))


def test_l3_vectors_do_not_depend_on_the_batch_size():
    from embrepro import spaces

    l3 = spaces.encoder("l3")
    texts = TEXTS * 5  # 35 texts: several batches of 16, one of 64
    assert spaces.L3_BATCH == 16
    np.testing.assert_array_equal(l3.encode(texts, batch_size=spaces.L3_BATCH), l3.encode(texts, batch_size=64))
