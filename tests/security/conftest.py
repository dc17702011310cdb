"""The security tests reuse the real handler stack of ``tests/functions`` (HTTP server,
test OIDC issuer with its certs on loopback, SQLite, SMTP, warehouse stand-in)."""

from tests.functions.conftest import stack  # noqa: F401 - re-exported fixture
