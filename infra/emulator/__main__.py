"""``python -m infra.emulator``: same as ``ordertasks emulator``."""

import sys

from infra.emulator.server import main

sys.exit(main(sys.argv[1:]))
