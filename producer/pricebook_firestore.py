"""The price book in Firestore: documents ``products/{sku}``, readable in the console.

Fields: ``name``, ``prices`` (a map of currency → decimal *string*: Firestore numbers are
doubles, and a price must never be one), ``tax_category``, ``active``. A cart's products
are read with one ``get_all`` round trip. ``put_products`` writes in batches of at most
500 documents (Firestore's limit); a batch commits atomically, so an import of more than
500 products is atomic per batch, and every product is validated before the first write.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type

from ordertasks.handlers.errors import DependencyUnavailable
from ordertasks.producer.pricebook import Product, check_product

BATCH = 500
_TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted)


class FirestorePriceBook:
    """``PriceBook`` over collection ``{prefix}products`` of a Firestore client."""

    def __init__(self, client: Any, prefix: str = "", timeout: float = 10.0) -> None:
        self.client = client
        self.products = client.collection(prefix + "products")
        self._timeout = timeout
        self._retry = Retry(predicate=if_exception_type(*_TRANSIENT), timeout=timeout)

    def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        """See ``PriceBook.get_products``."""
        refs = [self.products.document(sku) for sku in sorted(set(skus))]
        if not refs:
            return {}
        snaps = self._call(lambda: list(self.client.get_all(refs, retry=self._retry, timeout=self._timeout)))
        return {snap.id: _product(snap.id, snap.to_dict()) for snap in snaps if snap.exists}

    def put_products(self, products: Iterable[Product]) -> int:
        """See ``PriceBook.put_products``."""
        checked = [check_product(p) for p in products]
        for start in range(0, len(checked), BATCH):
            batch = self.client.batch()
            for product in checked[start:start + BATCH]:
                batch.set(self.products.document(product.sku), _doc(product))
            self._call(lambda: batch.commit(retry=self._retry, timeout=self._timeout))
        return len(checked)

    def list_products(self) -> list[Product]:
        """See ``PriceBook.list_products``."""
        snaps = self._call(lambda: list(self.products.stream(retry=self._retry, timeout=self._timeout)))
        return sorted((_product(s.id, s.to_dict()) for s in snaps), key=lambda p: p.sku)

    @staticmethod
    def _call(action: Any) -> Any:
        try:
            return action()
        except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise DependencyUnavailable(f"Firestore price book unavailable ({type(exc).__name__}: {exc}); "
                                        "check the project, the database and roles/datastore.user") from exc


def _doc(product: Product) -> dict[str, Any]:
    return {"name": product.name, "prices": {c: str(p) for c, p in product.prices.items()},
            "tax_category": product.tax_category, "active": product.active}


def _product(sku: str, doc: dict[str, Any]) -> Product:
    return Product(sku=sku, name=doc["name"], prices={c: Decimal(p) for c, p in doc.get("prices", {}).items()},
                   tax_category=doc.get("tax_category", "standard"), active=bool(doc.get("active", True)))
