"""Which declared kind performs each catalog kind: resolved once, at start-up, from the catalog.

For every ``[kinds.NAME]`` table, in this order:

1. ``effect = "module:attribute"`` → that attribute: a ``Kind`` (from ``@kind``) or a plain
   ``perform(task, ctx)`` function (then it gets the whole order snapshot as its data);
2. a built-in module ``handlers.kinds.NAME`` → its ``KIND``;
3. a ``[kinds.NAME.webhook]`` table → the generic webhook kind (POST the order snapshot).

Anything else refuses to start with one ``CatalogError`` naming the catalog file, the line of
the table and what to fix: never a traceback. The registry imports kinds only through the
catalog (``importlib``), so nothing here lists kinds by name and there is no import cycle.

Commands that only read records (``ordertasks failed``, ``stats``, ``console``) build no
registry: they must work where the shop's effect modules are not installed (an operator's
laptop). They check what can be checked without it (``check_kinds_have_code``), and what they
need of the kinds, where a create-once kind's done mark is read back, comes from
``catalog_done_records``, which imports only the built-in kinds of this package.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import replace

from ordertasks.handlers.config import Catalog, CatalogError, KindConfig, WebhookConfig
from ordertasks.handlers.errors import UnknownTaskKind
from ordertasks.handlers.kind import DoneRecord, Effect, Kind
from ordertasks.handlers.webhook import WEBHOOK_KIND, posts_webhook

BUILTIN_PACKAGE = "ordertasks.handlers.kinds"

# Compatibility: these names lived here before kinds became declarations.
from ordertasks.handlers.kind import EffectContext, Seller, SystemClock  # noqa: E402,F401


class KindRegistry(Mapping[str, Kind]):
    """The kinds one process serves, by catalog name, each with its webhook target if any."""

    def __init__(self, kinds: Mapping[str, Kind], webhooks: Mapping[str, WebhookConfig] | None = None) -> None:
        self._kinds = dict(kinds)
        self.webhooks: dict[str, WebhookConfig] = dict(webhooks or {})

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> "KindRegistry":
        """Resolve every catalog kind (see the module docstring); ``CatalogError`` if one cannot be."""
        kinds = {name: resolve_kind(config, catalog.source) for name, config in catalog.kinds.items()}
        webhooks = {name: target for name, config in catalog.kinds.items()
                    if (target := _webhook_target(config, kinds[name], catalog.source))}
        return cls(kinds, webhooks)

    def with_effects(self, effects: Mapping[str, Effect]) -> "KindRegistry":
        """A copy whose kinds perform with ``effects`` instead (tests use it to inject faults)."""
        unknown = sorted(set(effects) - set(self._kinds))
        if unknown:
            raise CatalogError(f"effects given for kinds the catalog does not declare: {', '.join(unknown)}")
        # A replaced perform is not known to be create-once: it takes the claim like any other.
        kinds = {name: replace(k.claiming(), perform=effects[name]) if name in effects else k
                 for name, k in self._kinds.items()}
        return KindRegistry(kinds, self.webhooks)

    def with_claims(self) -> "KindRegistry":
        """A copy in which every kind takes the claim before every attempt, create-once or not:
        the protocol before 0.3 (the ``cloud_cost`` benchmark's baseline)."""
        return KindRegistry({name: k.claiming() for name, k in self._kinds.items()}, self.webhooks)

    @property
    def done_records(self) -> dict[str, DoneRecord]:
        """Kind → where its done mark is read back, for the create-once kinds that keep it at the far end."""
        return {name: k.done_at for name, k in self._kinds.items() if k.done_at is not None}

    def kind(self, name: str) -> Kind:
        """The declaration of ``name``; ``UnknownTaskKind`` naming the known ones otherwise."""
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownTaskKind(f"unknown task kind {name[:80]!r}; known kinds: {', '.join(self._kinds)}") from None

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


def resolve_kind(config: KindConfig, source: str) -> Kind:
    """The declared kind behind one catalog table (see the module docstring)."""
    where = f"{config.source or source}:{config.line}: [kinds.{config.name}]"
    if config.effect:
        declared = _imported(config.effect, where)
        if declared.name and declared.name != config.name:
            raise CatalogError(f"{where} effect {config.effect!r} is declared as kind {declared.name!r}: "
                               f"name the table [kinds.{declared.name}] or drop the name from @kind(...)")
        return declared.named(config.name)
    builtin = _builtin(config.name, where)
    if builtin is not None:
        return builtin.named(config.name)
    if config.webhook is not None:
        return WEBHOOK_KIND.named(config.name)
    raise _no_code(config, source)


def check_kinds_have_code(catalog: Catalog) -> None:
    """What is checked of the kinds without importing a shop's module (the commands that build
    no registry): each names an ``effect``, is built in, or has a webhook; else the
    ``CatalogError`` ``resolve_kind`` would raise."""
    for config in catalog.kinds.values():
        if not (config.effect or config.webhook or _is_builtin(config.name)):
            raise _no_code(config, catalog.source)


def _no_code(config: KindConfig, source: str) -> CatalogError:
    return CatalogError(f"{config.source or source}:{config.line}: [kinds.{config.name}] has no code: add "
                        f"effect = \"package.module:attribute\" (a @kind function) "
                        f"or a [kinds.{config.name}.webhook] table with url = \"https://...\"")


def _is_builtin(name: str) -> bool:
    return importlib.util.find_spec(f"{BUILTIN_PACKAGE}.{name}") is not None


def catalog_done_records(catalog: Catalog) -> dict[str, DoneRecord]:
    """Kind → where its done mark is read back, from the catalog alone: the built-in kinds that
    keep it at the far end, never a shop's ``effect`` module (see the module docstring); a shop's
    kind is then read from the idempotency store only."""
    records: dict[str, DoneRecord] = {}
    for name, config in catalog.kinds.items():
        builtin = None if config.effect else _builtin(name, f"{config.source or catalog.source}:{config.line}")
        if builtin is not None and builtin.done_at is not None:
            records[name] = builtin.done_at
    return records


def _imported(reference: str, where: str) -> Kind:
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure of a shop's module is a config error
        raise CatalogError(f"{where} effect {reference!r}: module {module_name!r} does not import "
                           f"({type(exc).__name__}: {exc}); is it on PYTHONPATH?") from None
    target = getattr(module, attribute, None)
    if isinstance(target, Kind):
        return target
    if callable(target):
        return Kind(perform=target)
    found = "is missing" if target is None else f"is a {type(target).__name__}, not a @kind function"
    raise CatalogError(f"{where} effect {reference!r}: {module_name}.{attribute} {found}")


def _builtin(name: str, where: str) -> Kind | None:
    module_name = f"{BUILTIN_PACKAGE}.{name}"
    if not _is_builtin(name):
        return None
    declared = getattr(importlib.import_module(module_name), "KIND", None)
    if not isinstance(declared, Kind):
        raise CatalogError(f"{where} built-in module {module_name} declares no KIND")
    return declared


def _webhook_target(config: KindConfig, kind: Kind, source: str) -> WebhookConfig | None:
    target = config.webhook or kind.webhook
    if target is None and posts_webhook(kind):
        raise CatalogError(f"{config.source or source}:{config.line}: [kinds.{config.name}] posts to a webhook "
                           f"but has none: add [kinds.{config.name}.webhook] url = \"https://...\"")
    return target
