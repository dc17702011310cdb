"""Render the sample invoice's first page to ``docs/invoice-sample.png``.

Run ``python -m tests.effects.render_sample`` after changing the invoice layout, then look
at the image: text extraction cannot tell whether columns overlap or totals line up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pypdfium2 as pdfium

from ordertasks.handlers.kinds.generate_invoice import render_invoice_pdf
from tests.effects.orders import SELLER, eur_order

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "invoice-sample.png"


def render_sample(target: Path = SAMPLE, scale: float = 1.5) -> Path:
    """Write page 1 of the sample EUR invoice as PNG to ``target``."""
    pdf = render_invoice_pdf("A1001", eur_order(), SELLER)
    target.parent.mkdir(parents=True, exist_ok=True)
    pdfium.PdfDocument(pdf)[0].render(scale=scale).to_pil().save(target)
    return target


if __name__ == "__main__":
    print(render_sample(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLE))
