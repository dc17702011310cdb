"""``python -m ordertasks.infra.emulator`` (in a checkout also ``python -m infra.emulator``): same as
``ordertasks emulator``."""

import sys

from ordertasks.infra.emulator.server import main

sys.exit(main(sys.argv[1:]))
