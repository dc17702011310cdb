"""Local Cloud Tasks v2 emulator (gRPC and REST on one port): ``ordertasks emulator`` / ``python -m infra.emulator``.

Modules: ``server`` (command line, start-up), ``api`` (REST routes), ``service`` (API
operations on the state), ``store`` (SQLite), ``dispatcher`` (delivery, limits, retries),
``wire`` (JSON format), ``rules`` (limits), ``model`` (dataclasses, retry policy), ``oidc``
(tokens and keys), ``errors`` (google.rpc.Status).
"""
