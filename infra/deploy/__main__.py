"""``python -m infra.deploy plan|apply|destroy``."""

import sys

from infra.deploy import main

sys.exit(main())
