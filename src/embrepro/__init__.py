"""Embeddings, Reproduced: the helper package behind the book.

Two wings:

* what chapters import: :mod:`embrepro.data`, :mod:`embrepro.models`,
  :mod:`embrepro.evaluation`, :mod:`embrepro.claims`, :mod:`embrepro.plotting`;
* what runs the book, the subpackage :mod:`embrepro.book`: the runner, the run record, the
  generated pages, the browser check and the command line.

The science wing never imports the runner. Importing this package has no side effects.
"""

__version__ = "0.1.0"
