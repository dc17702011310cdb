"""``python cli.py …`` in a checkout runs the ``ordertasks`` command (``ordertasks.cli``)."""

import sys

from ordertasks.cli import main

if __name__ == "__main__":
    sys.exit(main())
