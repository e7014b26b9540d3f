"""Embeddings, Reproduced: the helper package behind the book.

Two wings:

* what chapters import: :mod:`embrepro.data`, :mod:`embrepro.models`,
  :mod:`embrepro.evaluation`, :mod:`embrepro.claims`, :mod:`embrepro.plotting`;
* what runs the book: :mod:`embrepro.runner`, :mod:`embrepro.book`, :mod:`embrepro.cli`.

The science wing never imports the runner. Importing this package has no side effects.
"""

__version__ = "0.1.0"
