"""The console's Host allow-list as flags and rules: ``--allowed-host`` (repeatable, with the
emulator's spelling ``--allow-host``), the names it compares, and what ``ordertasks console``
tells an operator who binds beyond loopback. (The DNS-rebinding attacks against a running
console are in ``tests/security/test_console_dns_rebinding.py``.)"""

from __future__ import annotations

import pytest

from ordertasks.infra.console.security import HostAllowList, host_name
from ordertasks.infra.console.serve import exposure_warning, parse


def test_allowed_host_is_repeatable_and_has_the_emulators_spelling() -> None:
    args = parse(["--host", "0.0.0.0", "--allowed-host", "ops.example", "--allow-host", "10.0.0.12"])
    assert args.allowed_hosts == ["ops.example", "10.0.0.12"]
    assert parse([]).allowed_hosts == []


@pytest.mark.parametrize("header, name", [("Ops.Example:8088", "ops.example"), ("[::1]:8088", "::1"),
                                          ("127.0.0.2", "127.0.0.2"), ("ops.example.", "ops.example"),
                                          ("::1", "::1"), ("", "")])
def test_host_names_are_compared_without_port_brackets_or_case(header: str, name: str) -> None:
    assert host_name(header) == name


def test_the_bound_host_and_named_hosts_are_allowed_and_nothing_else() -> None:
    allowed = HostAllowList("10.0.0.12", ["ops.example"])
    assert all(allowed.allows(h) for h in ("10.0.0.12:8088", "ops.example", "localhost:8088", "127.9.9.9", "[::1]"))
    assert not any(allowed.allows(h) for h in ("evil.example", "10.0.0.13", "ops.example.evil.example", "", "0.0.0.0"))
    assert "--allowed-host evil.example" in allowed.refusal("evil.example:8088")


def test_a_wildcard_bind_allows_no_name_by_itself() -> None:
    allowed = HostAllowList("0.0.0.0")
    assert allowed.names == frozenset()
    assert not allowed.allows("0.0.0.0:8088") and allowed.allows("127.0.0.1:8088")


def test_binding_beyond_loopback_warns_and_says_how_to_name_hosts() -> None:
    assert exposure_warning("127.0.0.1", []) is None and exposure_warning("127.0.0.2", []) is None
    assert "--allowed-host" in (exposure_warning("0.0.0.0", []) or "")
    assert "acts with your credentials" in (exposure_warning("10.0.0.12", []) or "")
    assert "--allowed-host" not in (exposure_warning("0.0.0.0", ["ops.example"]) or "")
