"""Online data: files with no URL of their own are made again by their recipes, byte for byte.

Everything runs offline: the network is a local HTTP server (``http_folder``), and the real recipes
are checked against the offline mirror with the mirror hidden from the loader."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from embrepro.book import launch, online
from embrepro.data import DataError, Manifest, manifest
from embrepro.derived import sha256_file
from embrepro.paths import mirror_dirs

MANIFEST_MODULE = sys.modules["embrepro.data.manifest"]
MIRROR = next((m for m in mirror_dirs() if (m / "beir" / "scifact" / "scifact.zip").is_file()), None)
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="the offline data mirror (../shared/data) is not here")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def no_mirror(tmp_path, monkeypatch):
    """A fresh download cache and no mirror at all: what a reader on Colab has."""
    monkeypatch.setenv("EMBREPRO_CACHE", str(tmp_path / "cache"))
    for module in (online, MANIFEST_MODULE):
        monkeypatch.setattr(module, "mirror_dirs", lambda: [])
    return tmp_path / "cache" / "data"


def _toy(monkeypatch, files: dict[str, tuple[bytes, str | None, dict | None]]):
    """A one-data-set manifest ``toy`` with the given (content, url, recipe) per file."""
    raw = {"datasets": {"toy": {"files": {
        name: {"sha256": _sha(data), "size": len(data), "url": url, "note": "made for the test"}
        for name, (data, url, _) in files.items()}}}}
    monkeypatch.setattr(MANIFEST_MODULE, "_MANIFEST", Manifest.from_dict(raw))
    table = {("toy", name): recipe for name, (_, _, recipe) in files.items() if recipe}
    monkeypatch.setattr(online, "recipes", lambda path=None: table)


def _tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _deb(members: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive holding debian-binary and data.tar.xz."""
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, content in (("debian-binary", b"2.0\n"), ("data.tar.xz", _tar(members, "w:xz"))):
        out.write(f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode())
        out.write(content + (b"\n" if len(content) % 2 else b""))
    return out.getvalue()


def test_a_member_of_a_downloaded_archive_is_made_and_checked(no_mirror, monkeypatch, http_folder):
    folder, base = http_folder
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("qc/train.txt", b"how far is it ?\n")
    (folder / "qc.zip").write_bytes(zipped.getvalue())
    (folder / "kg.tar.gz").write_bytes(_tar({"valid.txt": b"a\tr\tb\n"}))
    _toy(monkeypatch, {
        "qc.zip": (zipped.getvalue(), f"{base}/qc.zip", None),
        "kg.tar.gz": ((folder / "kg.tar.gz").read_bytes(), f"{base}/kg.tar.gz", None),
        "qc/train.txt": (b"how far is it ?\n", None, {"kind": "member", "archive": "qc.zip", "member": "qc/train.txt"}),
        "valid.txt": (b"a\tr\tb\n", None, {"kind": "member", "archive": "kg.tar.gz", "member": "valid.txt"}),
        "wrong.txt": (b"other bytes", None, {"kind": "member", "archive": "kg.tar.gz", "member": "valid.txt"}),
        "absent.txt": (b"x", None, {"kind": "member", "archive": "qc.zip", "member": "qc/absent.txt"}),
    })
    lines = []
    assert online.obtain("toy", "qc/train.txt", log=lines.append).read_bytes() == b"how far is it ?\n"
    assert (no_mirror / "toy" / "qc.zip").is_file()  # its input was downloaded and kept
    assert online.obtain("toy", "valid.txt", log=lines.append).read_bytes() == b"a\tr\tb\n"
    assert any("making toy/qc/train.txt (member)" in line for line in lines)
    # A recipe whose output is not the manifest's file stops, names it and keeps nothing.
    with pytest.raises(DataError, match=r"(?s)toy/wrong.txt.*does not match the manifest.*expected sha256"):
        online.obtain("toy", "wrong.txt", log=lines.append)
    assert sorted(p.name for p in (no_mirror / "toy").iterdir()) == ["kg.tar.gz", "qc", "qc.zip", "valid.txt"]
    with pytest.raises(DataError, match="qc.zip has no member 'qc/absent.txt'"):
        online.obtain("toy", "absent.txt", log=lines.append)


def test_a_debian_package_is_downloaded_once_checked_and_read(no_mirror, monkeypatch, http_folder):
    folder, base = http_folder
    licence = b"Format: x\n\nFiles: *\nLicense: WordNet\n permission\n\nFiles: debian/*\n"
    deb = _deb({"./usr/share/wordnet/data.noun": b"00001740 03 n 01 entity 0\n",
                "./usr/share/doc/wordnet-base/copyright": licence})
    (folder / "pkg.deb").write_bytes(deb)
    urls = [f"{base}/gone.deb", f"{base}/pkg.deb"]  # the first one is missing: the next is tried
    recipe = {"kind": "deb", "urls": urls, "sha256": _sha(deb)}
    start, end = licence.index(b"Files: *"), licence.index(b"\n\nFiles: debian") + 1
    _toy(monkeypatch, {
        "dict/data.noun": (b"00001740 03 n 01 entity 0\n", None, {**recipe, "member": "./usr/share/wordnet/data.noun"}),
        "doc/LICENSE": (licence[start:end], None,
                        {**recipe, "member": "./usr/share/doc/wordnet-base/copyright", "slice": [start, end]}),
        "dict/none": (b"x", None, {**recipe, "member": "./usr/share/wordnet/none"}),
        "dict/bad": (b"x", None, {**recipe, "sha256": "0" * 64, "member": "./usr/share/wordnet/data.noun"}),
    })
    assert online.obtain("toy", "dict/data.noun", log=lambda line: None).read_bytes().startswith(b"00001740")
    (folder / "pkg.deb").unlink()  # the package is kept in the cache: the second file needs no download
    assert online.obtain("toy", "doc/LICENSE", log=lambda line: None).read_bytes() == b"Files: *\nLicense: WordNet\n permission\n"
    with pytest.raises(DataError, match="has no file './usr/share/wordnet/none'"):
        online.obtain("toy", "dict/none", log=lambda line: None)
    (folder / "pkg.deb").write_bytes(deb)
    with pytest.raises(DataError, match=r"(?s)Could not get the Debian package.*gone.deb.*pkg.deb: sha256"):
        online.obtain("toy", "dict/bad", log=lambda line: None)


def test_the_manifest_gives_a_recipe_to_every_file_without_a_url_that_a_chapter_reads():
    table = online.recipes()
    for name in launch.discover():
        for dataset, filename in launch.chapter_files(name):
            entry = manifest().entry(dataset, filename)
            assert entry.url or (dataset, filename) in table, f"{name}: {dataset}/{filename}"
    kinds = {recipe["kind"] for recipe in table.values()}
    assert kinds <= set(online.BUILDERS)
    assert {r["function"] for r in table.values() if r["kind"] == "derive"} <= set(online.DERIVATIONS)


def _serve_mirror(folder: Path, base: str, monkeypatch) -> None:
    """Serve the mirror's copy of every file that has a URL from the local server, and send every
    download there (by the URL's hash), so that nothing leaves the machine."""
    routes = {}
    for ds in manifest().datasets.values():
        for entry in ds.files.values():
            source = MIRROR / ds.name / entry.name
            if entry.url and source.is_file():
                name = hashlib.sha1(entry.url.encode()).hexdigest()
                (folder / name).symlink_to(source)
                routes[entry.url] = f"{base}/{name}"
    real = online.download
    monkeypatch.setattr(online, "download", lambda url, dest: real(routes.get(url, url + ".not-served"), dest))


@needs_mirror
def test_a_scifact_chapter_fetches_and_makes_all_its_data_from_a_server(no_mirror, monkeypatch, http_folder):
    """quantization reads beir/scifact: 1 file downloaded, 4 taken out of it, 3 derived (one of them
    from a second data set); each must equal the mirror's file byte for byte (obtain checks)."""
    _serve_mirror(*http_folder, monkeypatch)
    lines = []
    fetched = launch.fetch_data("quantization", log=lines.append)
    assert len(fetched) == 8
    for dataset, filename in launch.chapter_files("quantization"):
        assert sha256_file(no_mirror / dataset / filename) == sha256_file(MIRROR / dataset / filename)
    assert (no_mirror / "beir" / "anserini_topics_qrels" / "qrels.beir-v1.0.0-scifact.test.txt").is_file()
    assert sum("making beir/scifact/" in line for line in lines) == 7
    assert launch.fetch_data("quantization", log=lines.append) == []  # all here now


@needs_mirror
@pytest.mark.parametrize("dataset, filename", [("wordnet", "dict/lexnames"), ("trec", "qc/test.txt"),
                                               ("kg", "WN18RR/valid.txt")])
def test_the_real_recipes_give_the_mirrors_bytes(no_mirror, monkeypatch, http_folder, dataset, filename):
    folder, base = http_folder
    _serve_mirror(folder, base, monkeypatch)
    if dataset == "wordnet":  # its input comes from a Debian package: take the mirror's copy instead
        (no_mirror / "wordnet" / "doc").mkdir(parents=True)
        (no_mirror / "wordnet" / "doc" / "lexnames.5WN.gz").symlink_to(MIRROR / "wordnet" / "doc" / "lexnames.5WN.gz")
    path = online.obtain(dataset, filename, log=lambda line: None)
    assert sha256_file(path) == sha256_file(MIRROR / dataset / filename)


def test_a_file_with_neither_url_nor_recipe_is_named_with_how_it_was_made(no_mirror, monkeypatch):
    _toy(monkeypatch, {"pins.txt": (b"x", None, None)})
    with pytest.raises(DataError, match=r"(?s)toy/pins.txt has no download URL and no recipe.*made for the test"):
        online.obtain("toy", "pins.txt")


def test_unknown_recipe_kinds_and_derivations_are_errors(no_mirror, monkeypatch):
    _toy(monkeypatch, {"a": (b"x", None, {"kind": "magic"}),
                       "b": (b"x", None, {"kind": "derive", "function": "nothing"})})
    with pytest.raises(DataError, match="unknown recipe kind 'magic'"):
        online.obtain("toy", "a", log=lambda line: None)
    with pytest.raises(DataError, match="Unknown derivation 'nothing'"):
        online.obtain("toy", "b", log=lambda line: None)
    assert not any((no_mirror / "toy").iterdir())
