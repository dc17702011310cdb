"""Item N1: in the cloud, where tokens are checked against fails closed.

With ``ORDERTASKS_BACKEND=cloud``, ``ORDERTASKS_OIDC_CERTS_URL`` could point anywhere (plain
http, loopback, the metadata address) and token-signing keys were trusted from there; and the
planned checkout had no ``ORDERTASKS_CHECKOUT_URL``, so ``/internal/*`` expected tokens for
``http://127.0.0.1:8080/`` and the start-up check said nothing. Now the certificates URL must
be Google's, or an https URL on a public name that ``ORDERTASKS_OIDC_ALLOWED_CERTS_URL`` names
too, and the checkout must be told its own URL; the start-up check names what is wrong, and
the real entry points refuse to start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ordertasks.handlers.cloud_readiness import DEPLOYABLES, cloud_problems, require_cloud_ready
from ordertasks.handlers.config import Settings
from ordertasks.handlers.errors import ConfigurationError
from ordertasks.handlers.settings import GOOGLE_CERTS_URL
from ordertasks.producer.checkout import create_app
from tests.functions.test_cloud_startup import COMPLETE as HANDLER_COMPLETE
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[2]
CHECKOUT_URL = "https://ordertasks-checkout-123456789.europe-west1.run.app"
COMPLETE = {**HANDLER_COMPLETE, "ORDERTASKS_CHECKOUT_URL": CHECKOUT_URL}
UNTRUSTED_CERTS = [
    "http://www.googleapis.com/oauth2/v1/certs",                     # Google's, but anyone on the path can swap it
    "http://127.0.0.1:8123/oauth2/v1/certs",                         # the local emulator's keys
    "https://localhost/oauth2/v1/certs",
    "https://127.1/oauth2/v1/certs",                                 # loopback in another spelling
    "https://[::1]/oauth2/v1/certs",
    "http://169.254.169.254/computeMetadata/v1/",                    # the metadata server
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://10.0.0.7/certs",                                        # a private address
]


def problems(deployable: str, **env: str | None) -> list[str]:
    merged = {**COMPLETE, **env}
    return cloud_problems(Settings.from_env({k: v for k, v in merged.items() if v is not None}), deployable)


def test_googles_certificates_and_a_named_checkout_start() -> None:
    """Attack: none; the shipped default and the deployed checkout URL are accepted by every deployable."""
    for deployable in DEPLOYABLES:
        assert problems(deployable) == []
        assert problems(deployable, ORDERTASKS_OIDC_CERTS_URL=GOOGLE_CERTS_URL) == []


@pytest.mark.parametrize("deployable", DEPLOYABLES)
@pytest.mark.parametrize("url", UNTRUSTED_CERTS)
def test_an_untrusted_certs_url_is_refused_naming_the_setting(deployable: str, url: str) -> None:
    """Attack: ORDERTASKS_OIDC_CERTS_URL pointed at http, loopback or the metadata server: forged keys, forged tokens."""
    found = problems(deployable, ORDERTASKS_OIDC_CERTS_URL=url)
    assert len(found) == 1 and found[0].startswith("ORDERTASKS_OIDC_CERTS_URL is "), found
    assert GOOGLE_CERTS_URL in found[0]


@pytest.mark.parametrize("url", UNTRUSTED_CERTS)
def test_allowing_an_untrusted_certs_url_does_not_make_it_trusted(url: str) -> None:
    """Attack: the same, with ORDERTASKS_OIDC_ALLOWED_CERTS_URL naming it too (a copied .env, say)."""
    found = problems("handler", ORDERTASKS_OIDC_CERTS_URL=url, ORDERTASKS_OIDC_ALLOWED_CERTS_URL=url)
    assert [p.split(" ", 1)[0] for p in found] == ["ORDERTASKS_OIDC_CERTS_URL"]


def test_another_https_source_needs_the_explicit_allowance() -> None:
    """Attack: ORDERTASKS_OIDC_CERTS_URL set to some https host nobody meant to trust."""
    mirror = "https://keys.my-shop.example/oauth2/v1/certs"
    refused = problems("handler", ORDERTASKS_OIDC_CERTS_URL=mirror)
    assert len(refused) == 1 and "ORDERTASKS_OIDC_ALLOWED_CERTS_URL" in refused[0]
    other = problems("handler", ORDERTASKS_OIDC_CERTS_URL=mirror, ORDERTASKS_OIDC_ALLOWED_CERTS_URL=mirror + "x")
    assert len(other) == 1
    assert problems("handler", ORDERTASKS_OIDC_CERTS_URL=mirror, ORDERTASKS_OIDC_ALLOWED_CERTS_URL=mirror) == []


@pytest.mark.parametrize("value", [None, "http://127.0.0.1:8080/", "http://checkout.my-shop.example/",
                                   "https://169.254.169.254/", "https://metadata.google.internal/"])
def test_the_checkout_without_its_own_url_is_refused(value: str | None) -> None:
    """Attack: the planned checkout had no ORDERTASKS_CHECKOUT_URL: /internal/* expected the audience http://127.0.0.1:8080/."""
    found = problems("checkout", ORDERTASKS_CHECKOUT_URL=value)
    assert len(found) == 1 and found[0].startswith("ORDERTASKS_CHECKOUT_URL is "), found
    assert ("unset or the local default" in found[0]) is (value in (None, "http://127.0.0.1:8080/"))
    assert problems("handler", ORDERTASKS_CHECKOUT_URL=value) == []      # the handler has no /internal/*


def test_the_checkout_app_refuses_to_be_built_without_its_url() -> None:
    """Attack: the same, at the checkout's real start (create_app, as gunicorn calls it)."""
    with pytest.raises(ConfigurationError, match="ORDERTASKS_CHECKOUT_URL is unset"):
        create_app(Settings.from_env({k: v for k, v in COMPLETE.items() if k != "ORDERTASKS_CHECKOUT_URL"}))


def test_the_handler_refuses_to_start_with_the_metadata_server_as_key_source(tmp_path: Path) -> None:
    """Attack: the deployed handler (functions-framework, main.py) with ORDERTASKS_OIDC_CERTS_URL on the metadata server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERTASKS_")}
    env |= {**COMPLETE, "ORDERTASKS_OIDC_CERTS_URL": "http://169.254.169.254/computeMetadata/v1/",
            "ORDERTASKS_DATA_DIR": str(tmp_path)}
    framework = Path(sys.executable).with_name("functions-framework")
    done = subprocess.run([str(framework), "--target", "handle_task", "--source", str(REPO / "main.py"),
                           "--host", "127.0.0.1", "--port", str(free_port())], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0
    assert "ORDERTASKS_OIDC_CERTS_URL is on an IP address (link-local)" in done.stderr
    assert "smtp-pw-do-not-print" not in done.stderr


def test_require_cloud_ready_names_both_at_once() -> None:
    """Attack: none; an operator fixing one setting at a time would redeploy twice."""
    env = {k: v for k, v in COMPLETE.items() if k != "ORDERTASKS_CHECKOUT_URL"}
    with pytest.raises(ConfigurationError) as raised:
        require_cloud_ready(Settings.from_env({**env, "ORDERTASKS_OIDC_CERTS_URL": "http://127.0.0.1:1/"}), "checkout")
    assert "  - ORDERTASKS_OIDC_CERTS_URL " in str(raised.value) and "  - ORDERTASKS_CHECKOUT_URL " in str(raised.value)
