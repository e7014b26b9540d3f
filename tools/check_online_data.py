"""Check that every chapter's data can be had online, with the offline mirror hidden.

What a reader on Colab or Binder does, `embrepro data fetch CHAPTER` (the launch cell), is run here for
every chapter into a scratch cache, with the mirror hidden from the loader and the network replaced
by local copies of the upstream sources:

- files with a URL are served from the mirror by a local HTTP server (routed by their URL);
- the Gutenberg books (each with a URL) are taken out of the mirror's tarball and served the same way;
- Debian packages come from ``--debs`` (``apt-get download wordnet-base wordnet-sense-index``),
  served by URL and checked against the recipe's sha256;
- ``git_archive`` recipes read a local clone of the repository from ``--git`` (folders named
  ``owner+name``, holding a bare repository or ``repo/``), as ``file://`` URLs.

Every file made by a recipe must have the manifest's sha256 (``embrepro.book.online`` checks it), so a
chapter that ends OK received exactly the files the book was recorded with. It does not prove that the
public sources are still online; that only a run on Colab can show.

    python tools/check_online_data.py --debs /tmp/deb --git /work/.mirror [CHAPTER ...]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from embrepro.book import launch, online
from embrepro.book.runner import discover
from embrepro.data import manifest
from embrepro.derived import DataError, sha256_file
from embrepro.paths import mirror_dirs


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _git_dir(root: Path, repo_url: str) -> Path | None:
    owner_name = repo_url.rstrip("/").removesuffix(".git").split("github.com/")[-1].replace("/", "+")
    for candidate in (root / owner_name / "repo", root / owner_name):
        if (candidate / "HEAD").is_file() or (candidate / ".git").exists():
            return candidate
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapters to check (default: all)")
    parser.add_argument("--debs", type=Path, help="folder of the Debian packages the recipes name")
    parser.add_argument("--git", type=Path, help="folder of local clones, one per repository (owner+name)")
    args = parser.parse_args()
    chapters = args.chapters or sorted(discover())
    mirror = next((m for m in mirror_dirs() if (m / "stsb").is_dir()), None)
    if mirror is None:
        raise SystemExit("no offline mirror here (../shared/data or EMBREPRO_DATA): nothing to serve")

    scratch = Path(tempfile.mkdtemp(prefix="online-check-"))
    served = scratch / "served"
    served.mkdir()
    routes: dict[str, str] = {}
    server, base = _serve(served)

    def route(url: str, source: Path) -> None:
        name = hashlib.sha1(url.encode()).hexdigest()
        if url in routes:
            return
        (served / name).symlink_to(source)
        routes[url] = f"{base}/{name}"

    for ds in manifest().datasets.values():
        for entry in ds.files.values():
            if entry.url and (mirror / ds.name / entry.name).is_file():
                route(entry.url, mirror / ds.name / entry.name)
    books = manifest().dataset("corpus_gutenberg_books").files
    with tarfile.open(mirror / "corpus_gutenberg" / "gutenberg_en_100MB.tar.gz") as tar:
        for member in tar:
            key = member.name.removeprefix("gutenberg/")
            if member.isfile() and key in books:
                target = scratch / "books" / hashlib.sha1(key.encode()).hexdigest()
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                route(books[key].url, target)
    debs = {sha256_file(p): p for p in (args.debs.glob("*.deb") if args.debs else [])}
    recipes = dict(online.recipes())
    for key, recipe in recipes.items():
        if recipe["kind"] == "deb" and recipe["sha256"] in debs:
            route(recipe["urls"][0], debs[recipe["sha256"]])
        if recipe["kind"] == "git_archive" and args.git:
            local = _git_dir(args.git, recipe["repo"])
            if local is not None:
                recipes[key] = {**recipe, "repo": local.resolve().as_uri()}

    real_download = online.download
    online.download = lambda url, dest: real_download(routes.get(url, url + "#not-served-offline"), dest)
    online.recipes = lambda path=None: recipes
    online.mirror_dirs = lambda: []  # the mirror is hidden from both layers of the loader
    sys.modules["embrepro.data.manifest"].mirror_dirs = lambda: []
    os.environ["EMBREPRO_CACHE"] = str(scratch / "cache")

    failed = []
    print(f"scratch cache {scratch / 'cache'}; {len(routes)} URLs served locally")
    for name in chapters:
        start = time.perf_counter()
        try:
            done = launch.fetch_data(name, log=lambda line: None)
        except (DataError, OSError) as exc:
            failed.append(name)
            print(f"{name}: FAILED {str(exc).splitlines()[0]}")
            continue
        files = launch.chapter_files(name)
        size = sum(manifest().entry(d, f).size for d, f in files)
        print(f"{name}: OK, {len(files)} files ({size / 1e6:.1f} MB), {len(done)} fetched or made now, "
              f"{time.perf_counter() - start:.1f} s")
    server.shutdown()
    print(f"{len(chapters) - len(failed)} of {len(chapters)} chapters have all their data online"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
