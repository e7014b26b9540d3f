"""The data manifest and fetching: which files the book reads, where they come from, and checks.

Every file the book reads is listed in ``data/manifest.yml``::

    datasets:
      stsb:
        title: STS Benchmark
        licence: ...
        citation: ...
        files:
          sts-test.csv: {sha256: <64 hex>, size: 227390, url: <raw URL or null>, note: <how it was made>}

:func:`fetch` finds a file in this order:

1. a local mirror named by ``EMBREPRO_DATA`` (one sub-folder per data set);
2. ``../shared/data`` beside the project, where it exists;
3. the download cache (``.cache/data/<data set>/``), filled from the file's URL on first use.

A file is always checked against its sha256 before use. A mirror file with the wrong hash is
refused (it is not silently replaced by a download), and a file that cannot be found or fetched
stops with a :class:`DataError` that names it, its expected hash and what to do.
:class:`DataError` and :func:`sha256_file` are defined in :mod:`embrepro.derived` (the layer
below, which also checks the cache's derived files) and re-exported here.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from embrepro.derived import DataError, sha256_file
from embrepro.paths import cache_dir, mirror_dirs, project_root

__all__ = ["DataError", "Dataset", "FileEntry", "Manifest", "dataset_fingerprints", "describe", "fetch",
           "manifest", "sha256_file"]


@dataclass(frozen=True)
class FileEntry:
    """One file of a data set: its name inside the data set's folder, sha256 (hex), size in bytes,
    public download URL (None for files made from others) and a note on how it was made."""

    dataset: str
    name: str
    sha256: str
    size: int
    url: str | None = None
    note: str | None = None


@dataclass
class Dataset:
    """A data set of the manifest: what it is, its licence and citation, and its files by name."""

    name: str
    title: str
    description: str
    licence: str
    citation: str
    source: str
    files: dict[str, FileEntry] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """One hash over the sha256 of every file: changes when any file changes."""
        joined = "\n".join(f"{k} {f.sha256}" for k, f in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()


class Manifest:
    """The data sets the book knows about (``data/manifest.yml``)."""

    def __init__(self, datasets: dict[str, Dataset]):
        self.datasets = datasets

    @classmethod
    def from_dict(cls, raw: dict) -> "Manifest":
        datasets = {}
        for name, spec in raw["datasets"].items():
            files = {
                fname: FileEntry(
                    dataset=name,
                    name=fname,
                    sha256=f["sha256"],
                    size=int(f["size"]),
                    url=f.get("url"),
                    note=f.get("note"),
                )
                for fname, f in spec["files"].items()
            }
            datasets[name] = Dataset(
                name=name,
                title=spec.get("title", name),
                description=spec.get("description", ""),
                licence=spec.get("licence", ""),
                citation=spec.get("citation", ""),
                source=spec.get("source", ""),
                files=files,
            )
        return cls(datasets)

    @classmethod
    def load(cls, path: Path | None = None) -> "Manifest":
        path = path or project_root() / "data" / "manifest.yml"
        with open(path, encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh))

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets))
            raise DataError(f"Unknown data set {name!r}. The manifest lists: {known}.")
        return self.datasets[name]

    def entry(self, dataset: str, filename: str) -> FileEntry:
        ds = self.dataset(dataset)
        if filename not in ds.files:
            raise DataError(
                f"{dataset!r} has no file {filename!r} in the manifest. "
                f"Its files: {', '.join(sorted(ds.files)[:20])}"
            )
        return ds.files[filename]


_MANIFEST: Manifest | None = None


def manifest() -> Manifest:
    """The project's manifest, read once per process."""
    global _MANIFEST
    if _MANIFEST is None:
        _MANIFEST = Manifest.load()
    return _MANIFEST


def _check(path: Path, entry: FileEntry, where: str) -> Path:
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise DataError(
            f"Checksum mismatch for {entry.dataset}/{entry.name} in {where} ({path}).\n"
            f"  expected sha256 {entry.sha256}\n"
            f"  found    sha256 {actual}\n"
            "The file is corrupt or a different version. Restore it from the original source "
            "(see data/manifest.yml), or delete it so that it is downloaded again."
        )
    return path


def download_file(url: str, dest: Path, what: str = "", size: int | None = None) -> None:
    """Download ``url`` to ``dest`` through a temporary file (nothing is left behind on failure),
    with a progress bar for files over 5 MB. ``what`` names the file in the error; ``size`` (bytes,
    from the manifest when known) sizes the bar, else the server's Content-Length does."""
    from tqdm.auto import tqdm

    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = size or int(response.headers.get("Content-Length") or 0)
            with tqdm(total=total or None, unit="B", unit_scale=True, desc=f"download {dest.name}",
                      disable=total < 5_000_000) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"Could not download {what or dest.name} from {url}: {exc}.\n"
            "If you are offline, point EMBREPRO_DATA at a folder holding the data sets "
            "(one sub-folder per data set, as in data/manifest.yml)."
        ) from exc
    os.replace(tmp, dest)


def _download(entry: FileEntry, target: Path) -> None:
    tmp = target.with_name(target.name + f".get{os.getpid()}")
    download_file(entry.url, tmp, f"{entry.dataset}/{entry.name}", size=entry.size)
    actual = sha256_file(tmp)
    if actual != entry.sha256:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"The download of {entry.dataset}/{entry.name} from {entry.url} does not match the manifest.\n"
            f"  expected sha256 {entry.sha256}\n  found    sha256 {actual}\n"
            "The upstream file may have changed; nothing was kept."
        )
    os.replace(tmp, target)


def fetch(dataset: str, filename: str, *, manifest_: Manifest | None = None) -> Path:
    """The verified local path of one file of a data set (downloading it if needed)."""
    entry = (manifest_ or manifest()).entry(dataset, filename)
    for mirror in mirror_dirs():
        candidate = mirror / dataset / filename
        if candidate.is_file():
            return _check(candidate, entry, f"the mirror {mirror}")
    cached = cache_dir("data", dataset) / filename
    if cached.is_file():
        return _check(cached, entry, "the download cache")
    if not entry.url:
        searched = ", ".join(str(m) for m in mirror_dirs()) or "(no mirror found)"
        raise DataError(
            f"{dataset}/{filename} (sha256 {entry.sha256}) is not in any local mirror "
            f"[{searched}] and has no public download URL.\n"
            f"  how it was made: {entry.note or 'see data/manifest.yml'}\n"
            "Set EMBREPRO_DATA to a folder that holds it."
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    _download(entry, cached)
    return cached


def dataset_fingerprints(names: list[str]) -> dict[str, str]:
    """Fingerprints of the named data sets (for cache keys), without reading any file."""
    return {name: manifest().dataset(name).fingerprint() for name in sorted(names)}


def describe(names: list[str]):
    """A table of data sets for a chapter's Data section: title, size, licence, citation."""
    import pandas as pd

    rows = []
    for name in names:
        ds = manifest().dataset(name)
        rows.append({"data set": ds.title, "files": len(ds.files),
                     "MB": round(sum(f.size for f in ds.files.values()) / 1e6, 1),
                     "licence": ds.licence, "cite": ds.citation})
    return pd.DataFrame(rows)

