"""The deprecated flat names of ``Settings`` (``settings.smtp_host``, ``Settings(smtp_port=…)``)
still work, with a warning that names the new place; nothing in the project uses them (the suite turns our own
deprecation warning into an error, see ``pyproject.toml``)."""

from __future__ import annotations

import warnings
from dataclasses import fields, replace
from pathlib import Path

import pytest

from ordertasks.handlers.errors import OrderTasksDeprecationWarning
from ordertasks.handlers.settings import FLAT_NAMES, GROUPS, OidcSettings, Settings, SmtpSettings, StoreSettings

REPO = Path(__file__).resolve().parents[2]
# The fields of the flat Settings before the split (CHANGELOG), other than those that stayed.
OLD_FLAT_FIELDS = {
    "data_dir", "sqlite_path", "blob_dir", "invoice_bucket", "firestore_database", "cloud_tasks_emulator_host",
    "tasks_transport", "handler_url", "checkout_url", "maintenance_url", "enqueue_concurrently",
    "enqueue_timeout_seconds", "delay_scale", "oidc_verify", "oidc_certs_url", "oidc_audience",
    "oidc_allowed_emails", "smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_starttls",
    "smtp_implicit_tls", "smtp_timeout_seconds", "mail_from", "seller_name", "seller_address", "seller_tax_id",
    "payments", "allow_test_payments", "stripe_secret_key", "stripe_webhook_secret", "stripe_api_base",
    "stripe_timeout_seconds", "sqlite_file", "blob_root"}


def test_every_old_flat_name_is_mapped_to_an_existing_group_field() -> None:
    assert OLD_FLAT_FIELDS <= set(FLAT_NAMES)
    settings = Settings()
    for name, (group, attribute) in FLAT_NAMES.items():
        assert group in GROUPS and hasattr(getattr(settings, group), attribute), name


@pytest.mark.parametrize("name", sorted(FLAT_NAMES))
def test_an_old_name_reads_the_grouped_value_with_a_warning(name: str) -> None:
    settings = Settings.from_env({"ORDERTASKS_SMTP_PORT": "2525", "ORDERTASKS_HANDLER_URL": "https://h.example/"})
    group, attribute = FLAT_NAMES[name]
    with pytest.warns(OrderTasksDeprecationWarning, match=rf"Settings\.{name} is deprecated: use "
                                                          rf"settings\.{group}\.{attribute}"):
        value = getattr(settings, name)
    assert value == getattr(getattr(settings, group), attribute)


def test_the_warning_points_at_the_caller() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Settings().smtp_port  # noqa: B018
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_an_unknown_name_is_an_attribute_error_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="'Settings' object has no attribute 'smtp_hots'"):
            Settings().smtp_hots  # noqa: B018
        assert not hasattr(Settings(), "extra")    # removed: nothing read it
        assert getattr(Settings(), "__deepcopy__", None) is None


def test_the_constructor_and_replace_take_the_old_keyword_names(tmp_path: Path) -> None:
    with pytest.warns(OrderTasksDeprecationWarning) as caught:
        settings = Settings(backend="local", data_dir=tmp_path, smtp_port=2525, oidc_verify=False)  # type: ignore[call-arg]
    assert "Settings.smtp_port is deprecated: use settings.smtp.port" in [str(w.message) for w in caught]
    assert settings == Settings(store=StoreSettings(data_dir=tmp_path), smtp=SmtpSettings(port=2525),
                                oidc=OidcSettings(verify=False))
    with pytest.warns(OrderTasksDeprecationWarning):
        changed = replace(settings, smtp_host="relay.example")  # type: ignore[call-arg]
    assert (changed.smtp.host, changed.smtp.port, changed.store.data_dir) == ("relay.example", 2525, tmp_path)
    with pytest.raises(TypeError, match="'smtp_prot'"):
        Settings(smtp_prot=1)  # type: ignore[call-arg]


def test_the_top_level_fields_are_not_flat_names() -> None:
    top = {f.name for f in fields(Settings)}
    assert not top & set(FLAT_NAMES)
    assert set(GROUPS) <= top


def test_the_suite_turns_our_deprecation_warning_into_an_error() -> None:
    """Guards the project-wide check: with the filter, a flat read anywhere in the suite fails."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert "error::ordertasks.handlers.errors.OrderTasksDeprecationWarning" in text
    with pytest.raises(OrderTasksDeprecationWarning):
        Settings().smtp_host  # noqa: B018
