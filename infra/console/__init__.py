"""``ordertasks console``: a server-rendered web console for operators.

Pages: Overview (counts per kind and outcome, failures per hour, backlog), Queues (state,
settings, due now versus later; pause, resume, purge), Orders (search by id or customer
email; a timeline per order; cancel pending tasks), Failed tasks (filter, detail, replay,
resolve, bulk replay). The same code runs locally (SQLite + the Cloud Tasks emulator) and
against production (Firestore + Cloud Tasks with application-default credentials).
"""

from ordertasks.infra.console.app import create_app
from ordertasks.infra.console.context import Console, console_from_settings

__all__ = ["Console", "console_from_settings", "create_app"]
