"""``python -m embrepro`` works like the ``embrepro`` command."""

import sys

from embrepro.book.cli import main

if __name__ == "__main__":
    sys.exit(main())
