"""Derived files: atomic writes, a record of sha256 and inputs, damage found on read and repaired.

Every test works in a temporary cache (``EMBREPRO_CACHE``); the corpus tests feed the Gutenberg
and IMDB builders three tiny made-up books and six made-up reviews instead of the real archives.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile

import numpy as np
import pytest

from embrepro import derived, retrieval
from embrepro.data import DataError, corpora


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def counting_builder(text: str, calls: list):
    def build(tmp):
        calls.append(tmp)
        tmp.write_text(text)
        return {"lines": text.count("\n")}
    return build


def cut(path, keep: int) -> None:
    """Truncate a file to its first ``keep`` bytes, as a killed copy or a full disk would."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])


# --------------------------------------------------------------------------------------------
# The helper
# --------------------------------------------------------------------------------------------

def test_a_derived_file_is_built_once_and_carries_its_record(tmp_path):
    calls = []
    target = tmp_path / "out.txt"
    made = derived.ensure(target, "inputs-1", counting_builder("a\nb\n", calls))
    again = derived.ensure(target, "inputs-1", counting_builder("a\nb\n", calls))
    assert len(calls) == 1 and again == made
    assert target.read_text() == "a\nb\n" and made.info == {"lines": 2}
    record = json.loads(derived.record_path(target).read_text())
    assert record["sha256"] == derived.sha256_file(target) and record["size"] == 4
    assert record["inputs"] == "inputs-1" and record["format"] == derived.RECORD_FORMAT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "out.txt.record.json"]  # no temporaries


@pytest.mark.parametrize("damage, phrase", [
    (lambda p: cut(p, 3), "truncated: 3 of 12 bytes"),
    (lambda p: p.write_text("XXXXXXXXXXXX"), "altered"),
    (lambda p: derived.record_path(p).unlink(), "without a record"),
    (lambda p: derived.record_path(p).write_text('{"format": 1, "size"'), "unreadable"),
])
def test_damage_is_found_on_read_and_repaired_with_one_log_line(tmp_path, caplog, damage, phrase):
    calls = []
    target = tmp_path / "out.txt"
    derived.ensure(target, "k", counting_builder("one\ntwo\nsix\n", calls))
    damage(target)
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        derived.ensure(target, "k", counting_builder("one\ntwo\nsix\n", calls))
    assert len(calls) == 2 and target.read_text() == "one\ntwo\nsix\n"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(target) in lines[0] and phrase in lines[0], lines


def test_other_inputs_rebuild_quietly(tmp_path, caplog):
    calls = []
    target = tmp_path / "out.txt"
    derived.ensure(target, "v1", counting_builder("old\n", calls))
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        made = derived.ensure(target, "v2", counting_builder("new\n", calls))
    assert len(calls) == 2 and target.read_text() == "new\n" and made.inputs == "v2"
    assert not caplog.records


def test_a_failed_build_leaves_neither_file_nor_temporaries(tmp_path):
    def broken(tmp):
        tmp.write_text("half")
        raise ValueError("encoder crashed")

    with pytest.raises(ValueError, match="encoder crashed"):
        derived.ensure(tmp_path / "out.txt", "k", broken)
    assert list(tmp_path.iterdir()) == []


def test_temporaries_of_dead_processes_are_removed(tmp_path):
    stale = tmp_path / ".out.txt.tmp-999999999-abc.txt"  # no such pid
    stale.write_text("left by a killed run")
    mine = tmp_path / ".other.txt.tmp-999999999-abc.txt"  # another file's temporary: kept
    mine.write_text("x")
    derived.ensure(tmp_path / "out.txt", "k", counting_builder("x\n", []))
    assert not stale.exists() and mine.exists()


def test_a_damaged_file_that_cannot_be_rebuilt_is_named_with_the_remedy(tmp_path, monkeypatch):
    source = tmp_path / "source.txt"  # a valid derived file the damaged one is built from
    derived.ensure(source, "s", counting_builder("source\n", []))
    target = tmp_path / "out.txt"
    derived.ensure(target, "k", counting_builder("result\n", []))
    cut(target, 2)

    def read_only(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(derived.os, "replace", read_only)
    with pytest.raises(DataError) as err:
        derived.ensure(target, "k", counting_builder("result\n", []), remedy="Run `make it`.")
    message = str(err.value)
    assert f"The derived file {target} is damaged (truncated: 2 of 7 bytes)" in message
    assert f"Delete {target}" in message and "Run `make it`." in message
    assert str(source) not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["source.txt", "source.txt.record.json", "out.txt", "out.txt.record.json"])


def test_verify_names_the_damaged_file_and_the_remedy(tmp_path):
    target = tmp_path / "vectors.npy"
    derived.ensure(target, "k", lambda tmp: np.save(tmp, np.ones((4, 3), dtype=np.float32)))
    assert derived.verify(target, "k", "unused").sha256 == derived.sha256_file(target)
    cut(target, 40)
    with pytest.raises(DataError, match=r"vectors\.npy is truncated: 40 of 176 bytes\. Run `embrepro run x`"):
        derived.verify(target, "k", "Run `embrepro run x` to rebuild it.")


# --------------------------------------------------------------------------------------------
# The embedding cache
# --------------------------------------------------------------------------------------------

def test_a_truncated_embedding_file_is_encoded_again(cache, caplog):
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return np.arange(len(texts) * 4, dtype=np.float32).reshape(len(texts), 4)

    emb_cache = retrieval.EmbeddingCache("toy-model", "rev1", encode)
    first = emb_cache.get(["a", "b", "c"], kind="doc")
    [npy] = (cache / "embeddings").glob("*.npy")
    cut(npy, npy.stat().st_size - 8)  # lose the last two floats: np.load would fail or mislead
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        again = retrieval.EmbeddingCache("toy-model", "rev1", encode).get(["a", "b", "c"], kind="doc")
    assert len(calls) == 2 and np.array_equal(first, again) and again.dtype == np.float32
    assert np.array_equal(np.load(npy), first)
    assert [str(npy) in r.getMessage() and "truncated" in r.getMessage() for r in caplog.records] == [True]
    hit = retrieval.EmbeddingCache("toy-model", "rev1", encode)
    assert np.array_equal(hit.get(["a", "b", "c"], kind="doc"), first) and (hit.hits, hit.misses) == (1, 0)


def test_an_encoder_returning_the_wrong_shape_writes_nothing(cache):
    emb_cache = retrieval.EmbeddingCache("toy-model", "rev1", lambda texts: np.zeros((1, 4)))
    with pytest.raises(ValueError, match="shape"):
        emb_cache.get(["a", "b"])
    assert not list((cache / "embeddings").iterdir())


# --------------------------------------------------------------------------------------------
# Corpora: a cut Gutenberg corpus and the IMDB token file
# --------------------------------------------------------------------------------------------

BOOKS = {
    "gutenberg/austen/one.txt": "It is a truth. Universally acknowledged, that a man! In possession of a fortune. "
                                "Must be in want of a wife.\n\nHowever little known.",
    "gutenberg/dickens/two.txt": "It was the best of times. It was the worst of times; it was the age of wisdom. "
                                 "It was the age of foolishness.",
    "gutenberg/melville/three.txt": "Call me Ishmael. Some years ago never mind how long precisely. Having little "
                                    "or no money in my purse. I thought I would sail about a little.",
}


@pytest.fixture
def tiny_gutenberg(cache, monkeypatch):
    monkeypatch.setattr(corpora, "_gutenberg_books", lambda: iter(sorted(BOOKS.items())))


def test_a_cut_corpus_file_is_found_and_cut_again(tiny_gutenberg, cache, caplog):
    full = corpora.gutenberg_corpus(None)
    assert full.books == 3 and full.tokens == sum(len(s) for t in BOOKS.values() for s in corpora.tokenize_sentences(t))
    small = corpora.gutenberg_corpus(20)
    text = small.path.read_text()
    assert small.path != full.path and 20 <= small.tokens < full.tokens
    assert small.tokens == len(text.split()) and small.sentences == text.count("\n")
    cut(small.path, len(text) // 2)
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        again = corpora.gutenberg_corpus(20)
    assert again.path.read_text() == text and (again.tokens, again.sentences) == (small.tokens, small.sentences)
    assert len(caplog.records) == 1 and str(small.path) in caplog.records[0].getMessage()


def test_a_damaged_full_corpus_is_rebuilt_before_its_cut_is_read(tiny_gutenberg, cache, caplog):
    full = corpora.gutenberg_corpus(None)
    text = full.path.read_text()
    cut(full.path, 10)
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        small = corpora.gutenberg_corpus(20)
        sample = corpora.gutenberg_sentences(3, seed=1, min_tokens=2)
    assert full.path.read_text() == text and len(sample) == 3
    assert all(s in text.splitlines() for s in sample.texts)
    assert small.path.read_text().splitlines() == [line for line in text.splitlines()
                                                   if line in small.path.read_text().splitlines()]
    assert [str(full.path) in r.getMessage() for r in caplog.records] == [True]


def test_a_cut_corpus_that_cannot_be_rebuilt_names_itself_not_the_full_corpus(tiny_gutenberg, cache, monkeypatch):
    full = corpora.gutenberg_corpus(None)
    small = corpora.gutenberg_corpus(20)
    cut(small.path, 5)

    def read_only(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(derived.os, "replace", read_only)
    with pytest.raises(DataError) as err:
        corpora.gutenberg_corpus(20)
    message = str(err.value)
    assert f"The derived file {small.path} is damaged (truncated: 5 of" in message
    assert str(full.path) not in message


REVIEWS = {
    "aclImdb/train/pos/0_9.txt": "A <br />wonderful film.",
    "aclImdb/train/neg/1_2.txt": "Dull and slow.",
    "aclImdb/test/pos/2_8.txt": "Loved it!",
    "aclImdb/test/neg/3_1.txt": "Awful<br/>acting.",
    "aclImdb/test/neg/4_3.txt": "Not good.",
    "aclImdb/train/unsup/5_0.txt": "unlabelled: left out",
}


@pytest.fixture
def tiny_imdb(cache, tmp_path, monkeypatch):
    archive = tmp_path / "imdb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in REVIEWS.items():
            payload = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    monkeypatch.setattr(corpora, "fetch", lambda dataset, filename: archive)
    monkeypatch.setattr(corpora, "_IMDB_MEMO", {})


def test_a_truncated_imdb_token_file_is_rebuilt(tiny_imdb, cache, caplog):
    train = corpora.load_imdb("train")
    assert train.tokens == [["a", "wonderful", "film"], ["dull", "and", "slow"]] and train.labels == [1, 0]
    assert corpora.load_imdb("test").ids == ["test/pos/2_8", "test/neg/3_1", "test/neg/4_3"]
    [npz] = (cache / "derived").glob("imdb-*.npz")
    cut(npz, npz.stat().st_size // 3)
    corpora._IMDB_MEMO.clear()
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        again = corpora.load_imdb("test")
    assert again.tokens == [["loved", "it"], ["awful", "acting"], ["not", "good"]]
    assert [str(npz) in r.getMessage() for r in caplog.records] == [True]


def test_a_truncated_token_embedding_file_is_encoded_again(cache, caplog):
    from embrepro import multivector

    calls = []

    def encode(texts):
        calls.append(list(texts))
        return [np.full((i + 1, 3), i, dtype=np.float32) for i in range(len(texts))]

    first = multivector.TokenEmbeddingCache("toy-model", "rev1", encode).get(["a", "b"], kind="doc")
    [npz] = (cache / "embeddings").glob("*.tokens.npz")
    cut(npz, npz.stat().st_size // 2)
    with caplog.at_level(logging.WARNING, logger="embrepro.derived"):
        again = multivector.TokenEmbeddingCache("toy-model", "rev1", encode).get(["a", "b"], kind="doc")
    assert len(calls) == 2 and np.array_equal(first.vectors, again.vectors)
    assert np.array_equal(first.offsets, again.offsets)
    assert any(str(npz) in r.getMessage() for r in caplog.records)
    hit = multivector.TokenEmbeddingCache("toy-model", "rev1", encode)
    assert np.array_equal(hit.get(["a", "b"], kind="doc").vectors, first.vectors) and (hit.hits, hit.misses) == (1, 0)
