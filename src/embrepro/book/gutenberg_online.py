"""Online recipes for the two made-for-the-mirror files of ``corpus_gutenberg``.

The offline mirror holds ``corpus_gutenberg/gutenberg_en_100MB.tar.gz`` (258 books packed as one
tarball) and ``corpus_gutenberg/MANIFEST.tsv`` (one row per book). Neither has a public URL, but
every book does: the manifest lists them as the data set ``corpus_gutenberg_books``, keyed by the
book's ``path_in_repo`` (``<author>/<title>.txt``). The two builders here fetch those books and
write both files again, byte for byte:

``gutenberg_en_100MB.tar.gz``
    A tar in POSIX.1-2001 (pax) format as Python's :mod:`tarfile` writes it: one regular-file
    member ``gutenberg/<path_in_repo>`` per book, in code-point order of the names, with no
    directory entries; every member has mode 0644, uid/gid 0, empty user and group names and
    mtime 0. A name longer than 100 bytes or with non-ASCII characters gets a pax extended header
    (``././@PaxHeader``, one ``path`` record) before it (45 of the 258). The archive ends with two
    zero blocks and is padded to a multiple of 10240 bytes (tarfile's record size). It is
    compressed by :class:`gzip.GzipFile` at level 9 with mtime 0 and no file name, so its gzip
    header is ``1f 8b 08 00 00000000 02 ff`` (no FNAME, XFL 2 = best compression, OS 255 =
    unknown, which Python writes). ``gzip.compress(..., mtime=0)`` is NOT the same on Python 3.11:
    it hands the work to zlib, which writes OS 3 (Unix). The deflate stream is zlib's at level 9,
    window 15, memory level 8, default strategy; checked with zlib 1.2.13. A zlib that deflates
    differently (zlib-ng, as some Python builds use) gives a valid archive with a different sha256.

``MANIFEST.tsv``
    UTF-8 text, lines ending in ``\\n``: the header ``path_in_repo git_blob bytes sha256`` (tab
    separated), then one row per book in the same order: its name, git blob id
    (``sha1(b"blob <size>\\0" + content)``), size in bytes and sha256. 17 names hold a carriage
    return (copied from the source repository); they are kept as they are.

A recipe is ``{kind: derive, function: gutenberg_tarball}`` or
``{kind: derive, function: gutenberg_manifest}``; an optional ``books`` key names the data
set that lists the books (default ``corpus_gutenberg_books``). The list of books and its order
come from that data set's file names in ``data/manifest.yml``.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from embrepro.derived import DataError

__all__ = ["BOOKS", "MEMBER_PREFIX", "book_names", "build_gutenberg_manifest_tsv",
           "build_gutenberg_tarball", "manifest_tsv_text", "write_tarball"]

BOOKS = "corpus_gutenberg_books"  # the data set that lists the books, keyed by path_in_repo
MEMBER_PREFIX = "gutenberg/"      # tar member name = MEMBER_PREFIX + path_in_repo
TSV_HEADER = ("path_in_repo", "git_blob", "bytes", "sha256")
GZIP_LEVEL = 9
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # what GzipFile(level 9, mtime 0, no name) writes
LOG_EVERY = 25  # books between progress lines

Fetch = Callable[[str, str], Path]
Log = Callable[[str], None]


def book_names(recipe: dict) -> list[str]:
    """The books to pack, in the order they are packed and listed: the file names of the recipe's
    ``books`` data set in the manifest, sorted by code point (as the mirror's files are)."""
    from embrepro.data.manifest import manifest

    dataset = recipe.get("books", BOOKS)
    names = sorted(manifest().dataset(dataset).files)
    if not names:
        raise DataError(f"The data set {dataset!r} lists no books in data/manifest.yml, so the "
                        "Gutenberg corpus cannot be rebuilt. Regenerate the manifest "
                        "(tools/build_manifest.py).")
    return names


def _check_name(name: str) -> None:
    # A tab or newline would break MANIFEST.tsv; a "\r" is allowed (17 real names hold one).
    if "\t" in name or "\n" in name or not name.endswith(".txt") or name.count("/") != 1:
        raise DataError(f"Unexpected Gutenberg book name {name!r}: expected '<author>/<title>.txt' "
                        "without tabs or newlines. Check the corpus_gutenberg_books entries of "
                        "data/manifest.yml.")


def write_tarball(names: Iterable[str], out: Path, *, fetch: Fetch, log: Log,
                  dataset: str = BOOKS) -> int:
    """Pack the books ``names`` (fetched from ``dataset``) into the gzipped tar ``out``, in the
    given order, in the mirror's exact format. Returns the number of books packed."""
    names = list(names)
    count = 0
    with open(out, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in names:
            _check_name(name)
            path = Path(fetch(dataset, name))
            info = tarfile.TarInfo(MEMBER_PREFIX + name)
            info.type = tarfile.REGTYPE
            info.size = path.stat().st_size
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
            count += 1
            if count % LOG_EVERY == 0 or count == len(names):
                log(f"gutenberg tarball: packed {count}/{len(names)} books")
    return count


def build_gutenberg_tarball(recipe: dict, out: Path, *, fetch: Fetch, download, log: Log) -> None:
    """Recipe ``gutenberg_tarball``: write ``corpus_gutenberg/gutenberg_en_100MB.tar.gz`` to ``out``
    from the books of ``corpus_gutenberg_books`` (about 100 MB to fetch, then ~10 s to gzip)."""
    names = book_names(recipe)
    log(f"gutenberg tarball: packing {len(names)} books (zlib {zlib.ZLIB_RUNTIME_VERSION}, "
        f"gzip level {GZIP_LEVEL})")
    write_tarball(names, Path(out), fetch=fetch, log=log, dataset=recipe.get("books", BOOKS))


def manifest_tsv_text(names: Iterable[str], *, fetch: Fetch, log: Log, dataset: str = BOOKS) -> str:
    """The text of MANIFEST.tsv for the books ``names`` (fetched from ``dataset``), in that order."""
    names = list(names)
    lines = ["\t".join(TSV_HEADER)]
    for i, name in enumerate(names, 1):
        _check_name(name)
        data = Path(fetch(dataset, name)).read_bytes()
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        lines.append(f"{name}\t{blob}\t{len(data)}\t{hashlib.sha256(data).hexdigest()}")
        if i % LOG_EVERY == 0 or i == len(names):
            log(f"gutenberg MANIFEST.tsv: hashed {i}/{len(names)} books")
    return "\n".join(lines) + "\n"


def build_gutenberg_manifest_tsv(recipe: dict, out: Path, *, fetch: Fetch, download, log: Log) -> None:
    """Recipe ``gutenberg_manifest``: write ``corpus_gutenberg/MANIFEST.tsv`` to ``out`` from the
    books of ``corpus_gutenberg_books``."""
    names = book_names(recipe)
    log(f"gutenberg MANIFEST.tsv: listing {len(names)} books")
    text = manifest_tsv_text(names, fetch=fetch, log=log, dataset=recipe.get("books", BOOKS))
    Path(out).write_bytes(text.encode("utf-8"))
