"""The online recipes of corpus_gutenberg (embrepro.book.gutenberg_online) rebuild the mirror's
tarball and MANIFEST.tsv byte for byte from the individual books.

The first tests need no mirror: they pack made-up books and check the format. The others extract
the books from the mirror's tarball into a temporary EMBREPRO_DATA folder
(``<tmp>/corpus_gutenberg_books/<path_in_repo>``) and rebuild from there with the real ``fetch``,
which checks every book's sha256 against the manifest."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from embrepro.book import gutenberg_online as go
from embrepro.data.manifest import DataError, fetch, manifest
from embrepro.paths import mirror_dirs

TARBALL = "gutenberg_en_100MB.tar.gz"


def no_download(url, dest):
    raise AssertionError(f"the Gutenberg recipes must not download anything here ({url})")


def folder_fetch(root: Path):
    """A fetch that reads <root>/<data set>/<name>, for made-up books."""
    return lambda dataset, name: root / dataset / name


def unpack_members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


# -- without the mirror ------------------------------------------------------------------------

MADE_UP = {
    "Austen, Jane/Emma.txt": b"Emma Woodhouse, handsome, clever, and rich.\n",
    "Balzac, Honor\u00e9 de/Old Goriot.txt": b"Madame Vauquer\n" * 40,
    "Carroll, Lewis/Alice in Wonderland\rA Dramatization of a rather long title, long enough indeed.txt": b"x" * 513,
}


@pytest.fixture
def made_up_books(tmp_path):
    for name, text in MADE_UP.items():
        path = tmp_path / go.BOOKS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text)
    return tmp_path


def test_tarball_format_with_made_up_books(made_up_books, tmp_path):
    out = tmp_path / "mini.tar.gz"
    names = sorted(MADE_UP)
    lines = []
    assert go.write_tarball(names, out, fetch=folder_fetch(made_up_books), log=lines.append) == 3
    assert lines == ["gutenberg tarball: packed 3/3 books"]
    raw = out.read_bytes()
    assert raw[:10] == go.GZIP_HEADER  # level 9, mtime 0, no FNAME, OS 255
    data = gzip.decompress(raw)
    assert len(data) % 10240 == 0 and data[-1024:] == bytes(1024)
    members = unpack_members(data)
    assert [m.name for m in members] == ["gutenberg/" + n for n in names]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in members:
            assert (m.type, m.mode, m.uid, m.gid, m.uname, m.gname, m.mtime) == (
                tarfile.REGTYPE, 0o644, 0, 0, "", "", 0)
            assert tar.extractfile(m).read() == MADE_UP[m.name.removeprefix("gutenberg/")]
    # pax headers only for the non-ASCII name and the name over 100 bytes
    assert [bool(m.pax_headers) for m in members] == [False, True, True]
    assert data[257:265] == b"ustar\x0000"  # POSIX ustar magic, as in the mirror


def test_manifest_tsv_text_with_made_up_books(made_up_books):
    names = sorted(MADE_UP)
    text = go.manifest_tsv_text(names, fetch=folder_fetch(made_up_books), log=lambda s: None)
    rows = text.split("\n")
    assert rows[0] == "path_in_repo\tgit_blob\tbytes\tsha256" and rows[-1] == ""
    emma = MADE_UP["Austen, Jane/Emma.txt"]
    # 2163...: the blob id that `git hash-object` gives for that text
    assert rows[1] == ("Austen, Jane/Emma.txt\t21630977236ca8716227bc077c71ac545921077d\t44\t"
                       + hashlib.sha256(emma).hexdigest())
    assert "\r" in rows[3] and len(rows) == 5


def test_a_name_with_a_tab_is_refused(made_up_books, tmp_path):
    with pytest.raises(DataError, match="Unexpected Gutenberg book name"):
        go.write_tarball(["Austen, Jane/Emma\t2.txt"], tmp_path / "x.tar.gz",
                         fetch=folder_fetch(made_up_books), log=lambda s: None)


# -- against the mirror ------------------------------------------------------------------------

def mirror_with_gutenberg() -> Path | None:
    for mirror in mirror_dirs():
        if (mirror / "corpus_gutenberg" / TARBALL).is_file():
            return mirror
    return None


needs_mirror = pytest.mark.skipif(mirror_with_gutenberg() is None,
                                  reason="needs the data mirror (corpus_gutenberg/" + TARBALL + ")")


@pytest.fixture(scope="module")
def books_mirror(tmp_path_factory):
    """(the mirror's uncompressed tar, a folder laid out as an EMBREPRO_DATA mirror of the books)."""
    mirror = mirror_with_gutenberg()
    raw = (mirror / "corpus_gutenberg" / TARBALL).read_bytes()
    data = gzip.decompress(raw)
    root = tmp_path_factory.mktemp("gutenberg_books")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar:
            path = root / go.BOOKS / member.name.removeprefix(go.MEMBER_PREFIX)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(tar.extractfile(member).read())
    return raw, data, root


@needs_mirror
def test_mini_tarball_equals_the_mirror_members(books_mirror, tmp_path, monkeypatch):
    """Four books packed alone give exactly the mirror's bytes for those members (pax headers
    included), then the end-of-archive blocks and padding to 10240 bytes."""
    raw, data, root = books_mirror
    monkeypatch.setenv("EMBREPRO_DATA", str(root))
    members = {m.name.removeprefix(go.MEMBER_PREFIX): m for m in unpack_members(data)}
    names = sorted(members)
    picks = [names[0],
             next(n for n in names if "\r" in n),
             next(n for n in names if not n.isascii()),
             next(n for n in names if n.isascii() and len((go.MEMBER_PREFIX + n).encode()) > 100)]
    picks = sorted(set(picks))
    assert len(picks) == 4
    out = tmp_path / "mini.tar.gz"
    go.write_tarball(picks, out, fetch=fetch, log=lambda s: None)
    mini = out.read_bytes()
    assert mini[:10] == raw[:10] == go.GZIP_HEADER

    expected = b""
    for name in picks:
        m = members[name]
        end = m.offset_data + -(-m.size // 512) * 512
        expected += data[m.offset:end]
    expected += bytes(1024)
    expected += bytes(-len(expected) % 10240)
    assert gzip.decompress(mini) == expected


@needs_mirror
def test_manifest_tsv_rebuilds_byte_exact(books_mirror, tmp_path, monkeypatch):
    _, _, root = books_mirror
    monkeypatch.setenv("EMBREPRO_DATA", str(root))
    out = tmp_path / "MANIFEST.tsv"
    go.build_gutenberg_manifest_tsv({"kind": "derive", "function": "gutenberg_manifest"}, out,
                                    fetch=fetch, download=no_download, log=lambda s: None)
    entry = manifest().entry("corpus_gutenberg", "MANIFEST.tsv")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == entry.sha256
    assert out.stat().st_size == entry.size


@needs_mirror
def test_tarball_rebuilds_byte_exact(books_mirror, tmp_path, monkeypatch):
    """The full rebuild: 258 books, ~100 MB gzipped at level 9 (about 9 s)."""
    _, _, root = books_mirror
    monkeypatch.setenv("EMBREPRO_DATA", str(root))
    out = tmp_path / TARBALL
    lines = []
    go.build_gutenberg_tarball({"kind": "derive", "function": "gutenberg_tarball"}, out,
                               fetch=fetch, download=no_download, log=lines.append)
    entry = manifest().entry("corpus_gutenberg", TARBALL)
    assert out.stat().st_size == entry.size
    assert hashlib.sha256(out.read_bytes()).hexdigest() == entry.sha256
    assert lines[-1] == "gutenberg tarball: packed 258/258 books"
