"""Local Cloud Tasks v2 emulator (gRPC and REST on one port): ``ordertasks emulator`` / ``python -m infra.emulator``.

Modules: ``server`` (command line, start-up), ``frontdoor`` (one port: gRPC or REST told
apart by a connection's first bytes), ``api`` (REST routes and ``invoke``, the one entry
point of both transports), ``grpc_service`` (each RPC transcoded to its REST call),
``guard`` (Host/Origin checks), ``controls`` (``/_emulator/reset`` and ``drain``),
``service`` (API operations on the state), ``batches`` (BatchCreate/DeleteTasks),
``operations`` (their long-running operations), ``cmek`` (CMEK configs), ``schema`` (unknown
JSON names), ``iam`` (queue policies), ``store`` (SQLite),
``dispatcher`` (delivery, limits, retries), ``routing`` (queue overrides applied at
dispatch), ``wire`` / ``wire_targets`` / ``wire_scalars`` (JSON format), ``rules`` (limits),
``model`` (dataclasses, retry policy), ``oidc`` (tokens and keys), ``errors``
(google.rpc.Status).
"""
