"""The HTTP/2 a gRPC server needs for unary calls: frames in, frames out (RFC 9113).

Only what :mod:`infra.emulator.h2grpc` uses, kept small so a call costs little: the frame
header, splitting a buffer into frames, the frames a server sends (SETTINGS, its ACK, PING
ACK, WINDOW_UPDATE, HEADERS, DATA, RST_STREAM, GOAWAY) and the header blocks of its answers.

Header blocks a client sends are decoded by ``hpack`` (python-hyper's HPACK, Huffman and the
dynamic table included), through :class:`HeaderBlocks`.  The blocks we send never touch a
dynamic table: every field is a static-table index or a "literal without indexing" (RFC 7541
§6.2.2), so a client's decoder state never depends on ours and the fixed parts are bytes
computed once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# SETTINGS identifiers and error codes (RFC 9113 §6.5.2, §7)
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 2, 3, 4, 5
NO_ERROR, PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, COMPRESSION_ERROR = 0x0, 0x1, 0x3, 0x6, 0x9
REFUSED_STREAM = 0x7
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
_HEADER = struct.Struct(">BHBBI")  # length as 1 + 2 bytes, type, flags, stream id


class ProtocolError(Exception):
    """The client broke HTTP/2: the connection ends with GOAWAY carrying ``code``."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Frame(NamedTuple):
    """One frame as read: type, flags, stream id and payload (padding not yet removed)."""

    kind: int
    flags: int
    stream: int
    payload: bytes


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame's bytes."""
    size = len(payload)
    return _HEADER.pack(size >> 16, size & 0xFFFF, kind, flags, stream) + payload


def frames(buffer: bytearray, max_size: int) -> Iterator[Frame]:
    """Take every complete frame off the front of ``buffer`` (what is left is a partial frame)."""
    offset = 0
    end = len(buffer)
    while end - offset >= 9:
        high, low, kind, flags, stream = _HEADER.unpack_from(buffer, offset)
        size = (high << 16) | low
        if size > max_size:
            raise ProtocolError(f"a frame of {size} bytes exceeds SETTINGS_MAX_FRAME_SIZE {max_size}",
                                FRAME_SIZE_ERROR)
        if end - offset - 9 < size:
            break
        yield Frame(kind, flags, stream & 0x7FFFFFFF, bytes(buffer[offset + 9:offset + 9 + size]))
        offset += 9 + size
    del buffer[:offset]


def unpadded(item: Frame) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (and HEADERS' priority block)."""
    payload = item.payload
    start, end = 0, len(payload)
    if item.flags & PADDED:
        if not payload or payload[0] >= len(payload):
            raise ProtocolError("padding longer than the frame")
        start, end = 1, len(payload) - payload[0]
    if item.kind == HEADERS and item.flags & PRIORITY_FLAG:
        start += 5
    if start > end:
        raise ProtocolError("a HEADERS frame too short for its priority block")
    return payload[start:end]


def settings(values: Iterable[tuple[int, int]]) -> bytes:
    """A SETTINGS frame."""
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", key, value) for key, value in values))


def read_settings(payload: bytes) -> list[tuple[int, int]]:
    """The (identifier, value) pairs of a SETTINGS frame."""
    if len(payload) % 6:
        raise ProtocolError("a SETTINGS frame whose length is not a multiple of 6", FRAME_SIZE_ERROR)
    return [struct.unpack_from(">HI", payload, i) for i in range(0, len(payload), 6)]


def window_update(stream: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame."""
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def read_increment(payload: bytes) -> int:
    """The increment of a WINDOW_UPDATE frame."""
    if len(payload) != 4:
        raise ProtocolError("a WINDOW_UPDATE frame must hold 4 bytes", FRAME_SIZE_ERROR)
    increment: int = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
    return increment


def goaway(last_stream: int, code: int) -> bytes:
    """A GOAWAY frame."""
    return frame(GOAWAY, 0, 0, struct.pack(">II", last_stream, code))


def rst_stream(stream: int, code: int) -> bytes:
    """An RST_STREAM frame."""
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def _encode_integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) whose first byte carries ``first``'s high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A header field as "literal without indexing, new name", no Huffman coding."""
    return b"\x00" + _encode_integer(len(name), 7, 0) + name + _encode_integer(len(value), 7, 0) + value


def literal_indexed_name(index: int, value: bytes) -> bytes:
    """A header field as "literal without indexing" naming a static-table entry."""
    return _encode_integer(index, 4, 0) + _encode_integer(len(value), 7, 0) + value


STATUS_200 = b"\x88"  # static table entry 8, ":status: 200"
CONTENT_TYPE = 31  # static table entry "content-type"


class HeaderBlocks:
    """The client's header blocks, decoded by ``hpack``; a block identical to the last one is
    not decoded again when it cannot have changed the decoder's dynamic table.

    A gRPC client sends the same block for every call of a method (indexed fields, and
    literals "without indexing" for its changing headers), and decoding it is a third of the
    framing's cost.  Reusing the result is exact: a block's meaning depends only on the
    dynamic table, only two representations change the table (a literal with incremental
    indexing, a table size update: RFC 7541 §6.2.1, §6.3), and the remembered block is
    dropped as soon as a block holding either is decoded.
    """

    def __init__(self) -> None:
        self.decoder = hpack.Decoder()
        self.last: tuple[bytes, dict[bytes, bytes]] | None = None

    def decode(self, block: bytes) -> dict[bytes, bytes]:
        """The block's fields (a later field of the same name wins, as gRPC reads them)."""
        if self.last is not None and self.last[0] == block:
            return self.last[1]
        try:
            headers: dict[bytes, bytes] = dict(self.decoder.decode(block, raw=True))
        except hpack.HPACKError as exc:
            raise ProtocolError(f"a header block hpack cannot decode: {exc}", COMPRESSION_ERROR) from None
        self.last = (block, headers) if leaves_table_alone(block) else None
        return headers


def leaves_table_alone(block: bytes) -> bool:
    """True when no field of the HPACK ``block`` adds to the dynamic table or resizes it."""
    try:
        at = 0
        while at < len(block):
            first = block[at]
            if first & 0x80:  # indexed field
                at = _skip_integer(block, at, 0x7F)
            elif first & 0xC0 == 0x40 or first & 0xE0 == 0x20:  # incremental indexing; size update
                return False
            else:  # literal without indexing or never indexed: a name index or a literal name
                new_name = first & 0x0F == 0
                at = _skip_integer(block, at, 0x0F)
                if new_name:
                    at = _skip_string(block, at)
                at = _skip_string(block, at)
        return True
    except IndexError:
        return False  # truncated: hpack refuses it anyway


def _read_integer(block: bytes, at: int, mask: int) -> tuple[int, int]:
    value, at = block[at] & mask, at + 1
    if value < mask:
        return value, at
    shift = 0
    while True:
        byte, at = block[at], at + 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _skip_integer(block: bytes, at: int, mask: int) -> int:
    return _read_integer(block, at, mask)[1]


def _skip_string(block: bytes, at: int) -> int:
    length, at = _read_integer(block, at, 0x7F)
    if at + length > len(block):
        raise IndexError("string past the block's end")
    return at + length
