"""Email headers that always render and never carry more than we put in them.

Why this module exists: a display name holding an RFC 2047 encoded word
(``=?utf-8?b?...?=``) whose decoded text contains CRLF was folded back onto the wire raw by
CPython before 3.11.10 / 3.12.5, so a customer name could add ``Bcc:``, ``Reply-To:`` or a
whole HTML body to an order email. Three defences, each enough on its own:

1. The checkout refuses such names and validates addresses (``producer.checkout_request``
   uses ``display_name_problem`` and ``renderable_address``).
2. ``mailbox`` builds every address header from ``email.headerregistry.Address``; a display
   name that is not plain text (an encoded-word opener, a control or line-break character)
   is dropped, so the message still reaches the customer, addressed by address alone.
3. ``check_rendered`` parses the serialised message back and refuses to send it unless it
   has exactly the headers we set, with exactly our recipients, whatever the Python version.

Cost: these checks were most of an email's rendering time (about 8 ms of CPU, three emails
per order). ``mailbox``, ``sender`` and ``display_name_problem`` are pure functions of their
text, so their answers are remembered (bounded): the shop's ``From`` is checked once per
process, a customer's address once for the three emails of an order, and the checkout
probes a name once when the customer and the shipping address carry the same one.
``check_rendered`` parses only the header block of the serialised message — where a
smuggled header would be — not the MIME parts, and hands back the bytes it read, which are
what ``SmtpMailer`` sends (``CheckedWire``): one serialisation per email.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email import errors as email_errors
from email import policy
from email.parser import BytesParser
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr

from ordertasks.handlers.errors import InvalidPayload

# Cc control, Cs surrogate, Zl/Zp line and paragraph separators: none belongs in a header.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
ENCODED_WORD_OPENER = "=?"
PROBE_ADDRESS = Address(username="probe", domain="example.com")
REMEMBERED_MAILBOXES = 4096      # distinct (name, address) answers kept; an Address is immutable
_HEADER_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True)
class CheckedWire:
    """A message as ``check_rendered`` passed it: the serialised bytes, and the envelope to
    send them with (``sender``: the shop's ``From`` address; ``recipients``: the ``To``
    addresses the check compared)."""

    data: bytes
    sender: str
    recipients: tuple[str, ...]


@functools.lru_cache(maxsize=REMEMBERED_MAILBOXES)
def display_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a display name, or ``None`` when it can."""
    if ENCODED_WORD_OPENER in name:
        return "must not contain '=?' (it would be read as an encoded word in an email header)"
    if any(unicodedata.category(char) in UNSAFE_CATEGORIES for char in name):
        return "must not contain control or line-break characters"
    if not _survives_folding(" ".join(name.split()), PROBE_ADDRESS):
        return "cannot be carried in an email header as written (try fewer symbols or a shorter name)"
    return None


def renderable_address(addr_spec: str) -> Address:
    """``addr_spec`` as an ``Address`` that serialises and parses back unchanged.

    Raises ``ValueError`` saying why when the email package cannot carry it as given.
    """
    try:
        address = Address(addr_spec=addr_spec)
    except (ValueError, IndexError, email_errors.HeaderParseError, email_errors.MessageDefect) as exc:
        raise ValueError(f"cannot be used as an email address ({exc})") from exc
    if address.addr_spec != addr_spec or not addr_spec.isascii():
        raise ValueError("cannot be used as an email address as written")
    return address


@functools.lru_cache(maxsize=REMEMBERED_MAILBOXES)
def mailbox(display_name: str, addr_spec: str) -> Address:
    """An address header value: the display name only when it is plain text (see module doc)."""
    name = " ".join(display_name.split())
    if display_name_problem(name) is not None:
        name = ""
    try:
        address = renderable_address(addr_spec)
    except ValueError as exc:
        raise InvalidPayload(f"recipient {addr_spec[:80]!r} {exc}; correct the order's email address") from exc
    if name and not _survives_folding(name, address):
        name = ""
    return Address(display_name=name, username=address.username, domain=address.domain)


def _survives_folding(name: str, address: Address) -> bool:
    # CPython's folder can split a long non-ASCII name into encoded words that parse back
    # with an extra space (e.g. astral-plane characters): such a name would fail
    # ``check_rendered`` on every attempt. Addressing by address alone always delivers.
    probe = EmailMessage()
    probe["To"] = Address(display_name=name, username=address.username, domain=address.domain)
    parsed = _HEADER_PARSER.parsebytes(probe.as_bytes(), headersonly=True)["To"].addresses
    return len(parsed) == 1 and parsed[0].display_name == name


def subject_text(text: str) -> str:
    """``text`` as one line of plain text for ``Subject``; ``InvalidPayload`` if it holds an
    encoded-word opener or a control or line-break character (the header factory would decode
    or refuse them). The order emails' subjects hold the wording and the order reference only,
    never a customer's text (``handlers.order_reference`` keeps the shop's order number plain)."""
    line = " ".join(text.split())
    if ENCODED_WORD_OPENER in line or any(unicodedata.category(char) in UNSAFE_CATEGORIES for char in line):
        raise InvalidPayload(f"the email subject {line[:80]!r} is not plain text; not sending it")
    return line


@functools.lru_cache(maxsize=16)
def sender(mail_from: str) -> Address:
    """The ``From`` mailbox from a setting such as ``Example Shop <orders@shop.example>``."""
    name, addr_spec = parseaddr(mail_from)
    return mailbox(name, addr_spec)


def check_rendered(msg: EmailMessage, headers: Sequence[str], recipients: Sequence[Address]) -> bytes:
    """The serialised message, once checked; ``InvalidPayload`` for a message that would go
    out with other headers or recipients.

    ``headers``: every header name we set, in any case. The message is serialised as it
    would be sent and parsed back, so a header smuggled in by folding shows up here. The
    bytes returned are the very bytes checked: a mailer that sends them (``CheckedWire``)
    sends what was checked, and does not serialise the message a second time.
    """
    # As SMTP carries it (CRLF line ends: smtplib sends given bytes unchanged).
    serialised = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    # The header block as a receiving server splits it off: the parts below it cannot add headers.
    wire = _HEADER_PARSER.parsebytes(serialised, headersonly=True)
    found = sorted(name.lower() for name in wire.keys())
    expected = sorted(name.lower() for name in headers)
    if found != expected:
        raise InvalidPayload(f"the rendered email has headers {found}, not {expected}; not sending it")
    parsed = [(a.display_name, a.addr_spec) for a in wire["To"].addresses]
    if parsed != [(a.display_name, a.addr_spec) for a in recipients]:
        raise InvalidPayload("the rendered email's recipients differ from the order's; not sending it")
    return serialised
