"""Artefacts that one chapter writes and later chapters read, saved so that equal content gives equal bytes.

The runner puts the sha256 of every artefact a chapter reads into that chapter's cache key. gensim
stamps the date and time of each save into the file (its "lifecycle" log), so the same vectors
saved twice hashed differently, and every re-run of an upstream chapter made its readers run again
although nothing they read had changed. :func:`save_keyed_vectors` saves without that log.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_keyed_vectors"]


def save_keyed_vectors(vectors, path: Path | str, **kwargs) -> None:
    """``vectors.save(path, **kwargs)`` for gensim ``KeyedVectors``, without the lifecycle log.

    The vectors' own log (``lifecycle_events``) is left as it was; nothing else in the file changes.
    Loading the file with ``KeyedVectors.load`` works as before.
    """
    events = getattr(vectors, "lifecycle_events", None)
    vectors.lifecycle_events = None  # gensim records no event while this is None
    try:
        vectors.save(str(path), **kwargs)
    finally:
        vectors.lifecycle_events = events
