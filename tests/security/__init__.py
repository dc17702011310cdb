"""Regression tests for the security review: one module per finding, one attack per test
(each test's docstring names it). The findings, by module:

1. boolean settings fail closed; OIDC off refused in the cloud ....... test_settings_fail_closed
2. unknown-kid refetch storm in ``CertCache`` ......................... test_cert_fetch_storm
3. verifier 500s → 401 / 503, and the OIDC cases that already held .... test_token_checks
4. token lifetime and ``nbf`` ......................................... test_token_checks
5. body read before authentication; 413 past the limit ............... test_body_limits
6. failed records that never close .................................... test_failed_records_close
7. terminal escapes in CLI output ..................................... test_terminal_output
8. backend internals leaking to clients ............................... test_client_errors
9. dev-stack audience; documented settings exist ...................... test_dev_stack_audience,
                                                                        test_documented_settings
10. duplicate JSON keys in checkout bodies ............................ test_client_errors

``measure_attacks`` (run with ``python -m``, not collected) measures the figures quoted in
``docs/security.md``.
"""
