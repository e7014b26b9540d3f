import hashlib
import shutil
from pathlib import Path

import pytest

from embrepro import data
from embrepro.data.manifest import DataError, Manifest
from embrepro.paths import mirror_dirs


def sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def one_file_manifest(name: str, payload: bytes, url: str | None) -> Manifest:
    return Manifest.from_dict({"datasets": {"demo": {"title": "Demo", "files": {
        name: {"sha256": sha(payload), "size": len(payload), "url": url, "note": "made for the test"}}}}})


def test_manifest_covers_the_mirror_with_licences_and_citations():
    m = data.manifest()
    mirror = next(d for d in mirror_dirs() if d.name == "data")
    folders = {p.parent.relative_to(mirror).as_posix() for p in mirror.rglob("PROVENANCE.txt")}
    assert folders <= set(m.datasets), folders - set(m.datasets)
    for name, ds in m.datasets.items():
        assert ds.licence and ds.citation, name
        for entry in ds.files.values():
            assert len(entry.sha256) == 64 and entry.size > 0
            assert entry.url or entry.note, f"{name}/{entry.name} has neither a URL nor a note"


def test_fetch_verifies_a_mirror_file():
    path = data.fetch("stsb", "sts-test.csv")
    assert data.sha256_file(path) == data.manifest().entry("stsb", "sts-test.csv").sha256


def test_corrupt_mirror_file_is_refused_with_its_expected_hash(tmp_path, monkeypatch):
    original = data.fetch("wordsim", "EN-RG-65.txt")
    mirror = tmp_path / "mirror"
    (mirror / "wordsim").mkdir(parents=True)
    corrupt = mirror / "wordsim" / "EN-RG-65.txt"
    shutil.copyfile(original, corrupt)
    with open(corrupt, "a") as fh:
        fh.write("extra\tline\t1.0\n")
    monkeypatch.setenv("EMBREPRO_DATA", str(mirror))
    expected = data.manifest().entry("wordsim", "EN-RG-65.txt").sha256
    with pytest.raises(DataError) as err:
        data.fetch("wordsim", "EN-RG-65.txt")
    assert expected in str(err.value) and "mismatch" in str(err.value)


def test_missing_file_without_url_names_the_file_and_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    m = one_file_manifest("absent.bin", b"never written", None)
    with pytest.raises(DataError) as err:
        data.fetch("demo", "absent.bin", manifest_=m)
    assert "demo/absent.bin" in str(err.value) and sha(b"never written") in str(err.value)


def test_download_from_a_local_server_is_verified_and_cached(tmp_path, monkeypatch, http_folder):
    folder, base = http_folder
    payload = b"word\tvector\n" * 1000
    (folder / "file.txt").write_bytes(payload)
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    m = one_file_manifest("file.txt", payload, f"{base}/file.txt")
    path = data.fetch("demo", "file.txt", manifest_=m)
    assert path.read_bytes() == payload
    assert path.is_relative_to(tmp_path / "cache")
    (folder / "file.txt").unlink()  # a second fetch must not need the server
    assert data.fetch("demo", "file.txt", manifest_=m) == path


def test_download_with_wrong_content_keeps_nothing(tmp_path, monkeypatch, http_folder):
    folder, base = http_folder
    (folder / "file.txt").write_bytes(b"tampered")
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    m = one_file_manifest("file.txt", b"original", f"{base}/file.txt")
    with pytest.raises(DataError, match="does not match"):
        data.fetch("demo", "file.txt", manifest_=m)
    assert not any((tmp_path / "cache").rglob("file.txt*"))


def test_unreachable_source_gives_a_clear_error(tmp_path, monkeypatch, http_folder):
    _, base = http_folder
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    m = one_file_manifest("gone.txt", b"x", f"{base}/gone.txt")  # 404 from the server
    with pytest.raises(DataError, match="Could not download"):
        data.fetch("demo", "gone.txt", manifest_=m)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DataError, match="stsb"):
        data.fetch("no_such_set", "x")


def test_sts_and_sick_loaders_match_the_published_sizes():
    test = data.load_stsb("test")
    assert len(test) == 1379 and min(test.scores) >= 0 and max(test.scores) <= 5
    assert len(data.load_stsb("train")) == 5749 and len(data.load_stsb("dev")) == 1500
    sick = data.load_sick("all")
    assert len(sick) == 9927 and min(sick.scores) >= 1 and max(sick.scores) <= 5
    assert len(data.load_sick("test")) == 4927
    with pytest.raises(ValueError):
        data.load_stsb("validation")


def test_sentence_pairs_sample_is_seeded_aligned_and_in_file_order():
    pairs = data.SentencePairs("demo", "test", [f"a{i}" for i in range(10)], [f"b{i}" for i in range(10)],
                               [float(i) for i in range(10)])
    got = pairs.sample(4, seed=0)
    # default_rng(0).choice(10, 4, replace=False) draws 2, 4, 5, 7 in some order; the sample keeps file order.
    assert got.scores == [2.0, 4.0, 5.0, 7.0]
    assert got.sentences1 == ["a2", "a4", "a5", "a7"] and got.sentences2 == ["b2", "b4", "b5", "b7"]
    assert (got.name, got.split) == ("demo", "test")
    assert pairs.sample(4, seed=0).scores == got.scores            # same seed, same sample
    assert pairs.sample(4, seed=1).scores == [3.0, 4.0, 6.0, 9.0]    # another seed, another sample
    assert pairs.sample(0) is pairs and pairs.sample(10) is pairs and pairs.sample(25, seed=3) is pairs
    with pytest.raises(ValueError, match="n >= 0"):
        pairs.sample(-1)


def test_nli_loader_matches_the_published_sizes_and_labels():
    dev, test, sick = data.load_nli("snli_dev"), data.load_nli("snli_test"), data.load_nli("sick_train")
    assert (len(dev), len(test), len(sick)) == (9842, 9824, 4500)
    assert (dev.labels.count("entailment"), dev.labels.count("neutral"), dev.labels.count("contradiction")) == \
        (3329, 3235, 3278)
    assert sick.labels[0] == "neutral" and sick.premises[0].startswith("A group of kids is playing in a yard")
    assert set(test.label_ids()) == {0, 1, 2}
    assert data.NLI_LABELS[dev.label_ids()[1]] == dev.labels[1] == "entailment"
    with pytest.raises(ValueError):
        data.load_nli("snli_train")


def test_word_similarity_and_analogy_files():
    ws = data.load_word_similarity("ws353")
    assert len(ws) == 353 and ws.pairs[0] == ("love", "sex")
    assert len(data.load_word_similarity("simlex999")) == 999
    assert len(data.load_word_similarity("men")) == 3000
    assert len(data.load_word_similarity("rw")) == 2034
    google = data.analogy_file("google").read_text().splitlines()
    assert sum(1 for line in google if line.startswith(":")) == 14
    assert sum(1 for line in google if not line.startswith(":")) == 19544
    msr = data.analogy_file("msr").read_text().splitlines()
    assert sum(1 for line in msr if not line.startswith(":")) == 8000


def test_gutenberg_corpus_cut_spans_every_book_and_is_repeatable():
    corpus = data.gutenberg_corpus(50_000)
    assert corpus.books == 258
    assert 50_000 <= corpus.tokens < 60_000  # each book's share is rounded up to a whole sentence
    first = corpus.path.read_text()
    assert data.gutenberg_corpus(50_000).path.read_text() == first
    # the licence header and footer are stripped (the phrase is in every modern header)
    assert "anyone anywhere at no cost" not in first and "start of this project gutenberg" not in first
    full = data.gutenberg_corpus(None)
    assert 16_000_000 < full.tokens < 17_000_000


def test_tokenize_matches_the_corpus_convention():
    assert data.tokenize("Don't STOP, 2 dogs!") == ["don't", "stop", "dogs"]
    modern = "licence\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nfoot"
    assert data.strip_gutenberg_boilerplate(modern).strip() == "body"
    old = "small print\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*END*\nbody\nEnd of the Project Gutenberg Etext\n"
    assert data.strip_gutenberg_boilerplate(old).strip() == "body"


def test_the_download_bar_is_sized_from_the_manifest_when_the_server_sends_no_length(tmp_path, monkeypatch,
                                                                                      http_folder):
    import http.server

    import tqdm.auto

    from embrepro.data.manifest import download_file

    folder, base = http_folder
    (folder / "big.bin").write_bytes(b"x" * 1000)
    bars = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            bars.append((kwargs.get("total"), kwargs.get("disable")))
            super().__init__(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    real_headers = http.server.SimpleHTTPRequestHandler.send_header

    def no_length(self, key, value):  # a server that does not say how long the file is
        if key.lower() != "content-length":
            real_headers(self, key, value)

    monkeypatch.setattr(http.server.SimpleHTTPRequestHandler, "send_header", no_length)
    download_file(f"{base}/big.bin", tmp_path / "a.bin", size=6_000_000)
    download_file(f"{base}/big.bin", tmp_path / "b.bin")
    assert bars == [(6_000_000, False), (None, True)]  # the manifest's size shows the bar; without it, none
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes() == b"x" * 1000
