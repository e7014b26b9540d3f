"""embrepro.artefacts: the same vectors saved twice give the same bytes, so readers' cache keys repeat."""

import hashlib
import time
from pathlib import Path

import numpy as np
from gensim.models import FastText, KeyedVectors

from embrepro.artefacts import save_keyed_vectors


def _files(folder: Path, name: str) -> dict[str, str]:
    """sha256 of the file and its side files (``name.vectors_ngrams.npy``), as the runner hashes them."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob(name + "*"))}


def _vectors() -> KeyedVectors:
    kv = KeyedVectors(vector_size=8)
    kv.add_vectors(["alpha", "beta", "gamma"], np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    return kv


def test_gensim_save_alone_differs_between_saves(tmp_path):
    # the reason for the helper: if gensim's own save repeated, this test would fail and the helper could go
    kv = _vectors()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    kv.save(str(tmp_path / "a" / "v.kv"))
    time.sleep(0.01)
    kv.save(str(tmp_path / "b" / "v.kv"))
    assert _files(tmp_path / "a", "v.kv") != _files(tmp_path / "b", "v.kv")


def test_equal_vectors_give_equal_bytes_and_load_back(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        save_keyed_vectors(_vectors(), tmp_path / folder / "v.kv")
        time.sleep(0.01)
    assert _files(tmp_path / "a", "v.kv") == _files(tmp_path / "b", "v.kv")
    loaded = KeyedVectors.load(str(tmp_path / "a" / "v.kv"))
    assert loaded.index_to_key == ["alpha", "beta", "gamma"]
    np.testing.assert_array_equal(loaded.vectors, _vectors().vectors)


def test_different_vectors_give_different_bytes(tmp_path):
    kv = _vectors()
    save_keyed_vectors(kv, tmp_path / "a.kv")
    kv.vectors[0, 0] += 1.0
    save_keyed_vectors(kv, tmp_path / "b.kv")
    assert _files(tmp_path, "a.kv")["a.kv"] != _files(tmp_path, "b.kv")["b.kv"]


def test_fasttext_vectors_with_side_files_repeat(tmp_path):
    sentences = [["the", "cat", "sat"], ["the", "dog", "ran"]] * 20
    model = FastText(sentences, vector_size=8, min_count=1, bucket=5000, epochs=1, workers=1, seed=1)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        save_keyed_vectors(model.wv, tmp_path / folder / "v.kv", sep_limit=1000)  # arrays in side files
        time.sleep(0.01)
    files = _files(tmp_path / "a", "v.kv")
    assert len(files) > 1  # the n-gram matrix went to a side file
    assert files == _files(tmp_path / "b", "v.kv")


def test_the_vectors_own_log_is_kept(tmp_path):
    kv = _vectors()
    kv.lifecycle_events = []
    kv.add_lifecycle_event("made", note="by the test")
    save_keyed_vectors(kv, tmp_path / "v.kv")
    assert [e["event"] for e in kv.lifecycle_events] == ["made"]
