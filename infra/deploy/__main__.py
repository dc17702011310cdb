"""``python -m ordertasks.infra.deploy plan|apply|destroy`` (in a checkout also ``python -m infra.deploy``)."""

import sys

from ordertasks.infra.deploy import main

sys.exit(main())
