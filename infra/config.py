"""Compatibility home of the configuration: it now lives in ``handlers.config``.

The catalog model and ``Settings`` moved into the core so that ``handlers`` imports nothing
above it; ``from infra.config import Settings`` (and the other names) keeps working.
"""

from ordertasks.handlers.config import (DEFAULT_CATALOG, GOOGLE_CERTS_URL, MAX_DELAY_SECONDS, QUEUE_ID, REPO_ROOT,
                             Catalog, CatalogError, KindConfig, QueueConfig, Settings, load_catalog)

__all__ = ["DEFAULT_CATALOG", "GOOGLE_CERTS_URL", "MAX_DELAY_SECONDS", "QUEUE_ID", "REPO_ROOT", "Catalog",
           "CatalogError", "KindConfig", "QueueConfig", "Settings", "load_catalog"]
