"""The emulator's HTTP/2 framing (``infra/emulator/http2.py``) and header-block cache, against
python-hyper's ``hpack`` and ``h2`` as the other side.

The blocks the emulator sends must decode, with any decoder state, to the fields it meant; the
blocks it receives are decoded by ``hpack``, and a repeated block is reused only when that
gives what decoding it again would (checked over generated sequences of header lists encoded
the way clients do, with incremental indexing, without, and never indexed).  Frames are read
whole or not at all, and a client that breaks the protocol gets GOAWAY and a closed connection.
"""

from __future__ import annotations

import asyncio

import hpack
import pytest
from hypothesis import given, settings, strategies as st

from ordertasks.infra.emulator import http2
from ordertasks.infra.emulator.errors import RpcError
from ordertasks.infra.emulator.h2grpc import GrpcConnection
from ordertasks.infra.emulator.http2 import HeaderBlocks, leaves_table_alone
from ordertasks.infra.emulator.http2 import Frame, ProtocolError
from tests.emulator.test_h2grpc import Client, Wire

NAMES = st.sampled_from([b"x-goog-api-client", b"x-goog-request-params", b"grpc-timeout", b"te", b"user-agent",
                         b"x-custom", b"content-type"])
VALUES = st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\x00", b"a"))
HEADER_LISTS = st.lists(st.lists(st.tuples(NAMES, VALUES), min_size=1, max_size=6), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(HEADER_LISTS, st.lists(st.sampled_from(["indexed", "huffman", "sensitive", "repeat"]), min_size=12,
                              max_size=12))
def test_the_block_cache_decodes_every_sequence_as_a_fresh_decoder_does(lists: list[list[tuple[bytes, bytes]]],
                                                                         modes: list[str]) -> None:
    encoder, reference, cached = hpack.Encoder(), hpack.Decoder(), HeaderBlocks()
    previous = b""
    for headers, mode in zip(lists, modes):
        if mode == "repeat" and previous:
            block = previous
        elif mode == "sensitive":
            block = encoder.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in headers], huffman=False)
        else:
            block = encoder.encode(headers, huffman=mode == "huffman")
        previous = block
        assert cached.decode(block) == dict(reference.decode(block, raw=True))


def test_a_block_of_indexed_fields_and_unindexed_literals_leaves_the_table_alone() -> None:
    encoder = hpack.Encoder()
    encoder.encode([(b":method", b"POST"), (b"x-a", b"1")])  # x-a now in the encoder's table
    neutral = encoder.encode([(b":method", b"POST"), (b"x-a", b"1"), hpack.NeverIndexedHeaderTuple(b"x-b", b"2")])
    adding = encoder.encode([(b"x-new", b"3")])

    assert leaves_table_alone(neutral)
    assert not leaves_table_alone(adding)
    assert not leaves_table_alone(b"\x3f\xe1\x1f")  # a dynamic table size update
    assert not leaves_table_alone(b"\x00\x05ab")  # truncated


def test_a_changed_table_drops_the_remembered_block() -> None:
    encoder, blocks = hpack.Encoder(), HeaderBlocks()
    first = encoder.encode([(b"x-a", b"1")])  # adds x-a: 1 at dynamic index 62
    second = encoder.encode([(b"x-a", b"1")])  # refers to index 62
    assert blocks.decode(first) == {b"x-a": b"1"}
    assert blocks.decode(second) == {b"x-a": b"1"}
    assert blocks.last is not None and blocks.last[0] == second
    blocks.decode(encoder.encode([(b"x-b", b"2")]))  # a block that adds to the table
    assert blocks.last is None


@pytest.mark.parametrize("message", ["", "short", "é" * 10, "x" * 200, "y" * 20_000])
def test_the_blocks_we_send_decode_to_what_we_meant(message: str) -> None:
    from ordertasks.infra.emulator.h2grpc import _ANSWER_HEADERS, _OK_TRAILERS, _trailers
    decoder = hpack.Decoder()
    decoder.max_header_list_size = 1 << 20
    assert decoder.decode(_ANSWER_HEADERS, raw=True) == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert decoder.decode(_OK_TRAILERS, raw=True) == [(b"grpc-status", b"0")]
    fields = dict(decoder.decode(_trailers("NOT_FOUND", message), raw=True))
    assert fields[b"grpc-status"] == b"5"
    assert fields.get(b"grpc-message", b"") == (message.encode() if message.isascii() else
                                                http2_quoted(message))


def http2_quoted(message: str) -> bytes:
    from urllib.parse import quote
    return quote(message, safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~").encode()


def test_frames_are_taken_whole_and_a_partial_one_waits() -> None:
    raw = http2.frame(http2.PING, 0, 0, b"12345678") + http2.frame(http2.DATA, 1, 3, b"abc")
    buffer = bytearray(raw + raw[:5])

    assert list(http2.frames(buffer, 1 << 14)) == [Frame(http2.PING, 0, 0, b"12345678"), Frame(http2.DATA, 1, 3, b"abc")]
    assert bytes(buffer) == raw[:5]


def test_a_frame_over_the_maximum_size_is_a_frame_size_error() -> None:
    with pytest.raises(ProtocolError) as raised:
        list(http2.frames(bytearray(http2.frame(http2.DATA, 0, 1, b"x" * 100)), 50))
    assert raised.value.code == http2.FRAME_SIZE_ERROR


def test_padding_and_priority_are_removed() -> None:
    padded = Frame(http2.DATA, http2.PADDED, 1, b"\x03abcPPP")
    with_priority = Frame(http2.HEADERS, http2.PRIORITY_FLAG | http2.PADDED, 1, b"\x01" + b"\x00" * 5 + b"blockP")
    assert http2.unpadded(padded) == b"abc"
    assert http2.unpadded(with_priority) == b"block"
    with pytest.raises(ProtocolError):
        http2.unpadded(Frame(http2.DATA, http2.PADDED, 1, b"\x09ab"))


# -- a raw client on the wire -------------------------------------------------------------

def _connection(calls: dict[bytes, object] | None = None) -> tuple[GrpcConnection, Wire]:
    async def echo(request: bytes) -> bytes:
        return request

    wire = Wire()
    connection = GrpcConnection(calls or {b"/s/Echo": echo}, 1024, set())  # type: ignore[arg-type]
    connection.connection_made(wire)
    wire.sent.clear()
    return connection, wire


def _sent_frames(wire: Wire) -> list[Frame]:
    return list(http2.frames(bytearray(wire.sent), 1 << 24))


def _request(stream: int, path: bytes, message: bytes, split_headers: bool = False) -> bytes:
    block = hpack.Encoder().encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
                                    (b":authority", b"t"), (b"content-type", b"application/grpc")])
    body = http2.frame(http2.DATA, http2.END_STREAM, stream, b"\x00" + len(message).to_bytes(4, "big") + message)
    if not split_headers:
        return http2.frame(http2.HEADERS, http2.END_HEADERS, stream, block) + body
    return (http2.frame(http2.HEADERS, 0, stream, block[:3]) + http2.frame(http2.CONTINUATION, 0, stream, block[3:6])
            + http2.frame(http2.CONTINUATION, http2.END_HEADERS, stream, block[6:]) + body)


def test_a_header_block_in_continuation_frames_is_one_call() -> None:
    async def scenario() -> list[Frame]:
        connection, wire = _connection()
        connection.data_received(http2.PREFACE + http2.settings([]) + _request(1, b"/s/Echo", b"hi", split_headers=True))
        return _sent_frames(wire)
    sent = asyncio.run(scenario())
    data = [f.payload for f in sent if f.kind == http2.DATA]
    assert data == [b"\x00\x00\x00\x00\x02hi"]
    assert [f.kind for f in sent if f.kind == http2.SETTINGS] == [http2.SETTINGS]  # our ACK of theirs


@pytest.mark.parametrize(("wire_bytes", "code"), [
    (b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10, http2.PROTOCOL_ERROR),
    (http2.PREFACE + http2.frame(http2.PUSH_PROMISE, http2.END_HEADERS, 1, b"\x00\x00\x00\x02"), http2.PROTOCOL_ERROR),
    (http2.PREFACE + http2.frame(http2.HEADERS, http2.END_HEADERS, 2, b"\x82"), http2.PROTOCOL_ERROR),
    (http2.PREFACE + http2.frame(http2.HEADERS, 0, 1, b"\x82") + http2.frame(http2.PING, 0, 0, b"12345678"),
     http2.PROTOCOL_ERROR),
    (http2.PREFACE + http2.frame(http2.HEADERS, http2.END_HEADERS, 1, b"\xff\xff\xff\x7f"), http2.COMPRESSION_ERROR),
    (http2.PREFACE + http2.frame(http2.SETTINGS, 0, 0, b"\x00\x04\x80\x00\x00\x00"), http2.FLOW_CONTROL_ERROR),
], ids=["not HTTP/2", "push promise", "even stream", "interrupted header block", "bad hpack", "window too large"])
def test_a_client_breaking_the_protocol_gets_goaway_and_a_closed_connection(wire_bytes: bytes, code: int) -> None:
    async def scenario() -> tuple[list[Frame], bool]:
        connection, wire = _connection()
        connection.data_received(wire_bytes)
        return _sent_frames(wire), wire.closed
    sent, closed = asyncio.run(scenario())
    goaways = [f for f in sent if f.kind == http2.GOAWAY]
    assert closed and len(goaways) == 1 and int.from_bytes(goaways[0].payload[4:8], "big") == code


def test_a_ping_is_acknowledged_with_its_payload() -> None:
    async def scenario() -> list[Frame]:
        connection, wire = _connection()
        connection.data_received(http2.PREFACE + http2.frame(http2.PING, 0, 0, b"abcdefgh"))
        return _sent_frames(wire)
    assert Frame(http2.PING, http2.ACK, 0, b"abcdefgh") in asyncio.run(scenario())


def test_an_answer_waits_for_the_clients_window_and_resumes_when_it_opens() -> None:
    """A client with a 10-byte stream window gets the answer's DATA in pieces, each after a WINDOW_UPDATE."""
    async def big(request: bytes) -> bytes:
        return b"z" * 25

    async def scenario() -> bytes:
        connection, wire = _connection({b"/s/Big": big})
        connection.data_received(http2.PREFACE + http2.settings([(http2.INITIAL_WINDOW_SIZE, 10)])
                                 + _request(1, b"/s/Big", b"x"))
        received = b""
        for _ in range(10):
            await asyncio.sleep(0)
            received += b"".join(f.payload for f in _sent_frames(wire) if f.kind == http2.DATA)
            wire.sent.clear()
            connection.data_received(http2.window_update(1, 10))
        return received
    assert asyncio.run(scenario()) == b"\x00\x00\x00\x00\x19" + b"z" * 25


def test_an_error_message_larger_than_a_frame_is_sent_in_continuation_frames() -> None:
    async def refuses(request: bytes) -> bytes:
        raise RpcError("INVALID_ARGUMENT", "m" * 40_000)

    async def scenario() -> dict[str, str]:
        client = Client({b"/s/No": refuses})
        stream = client.call("/s/No", b"x")
        return client.status(stream)
    status = asyncio.run(scenario())
    assert status["grpc-status"] == "3" and status["grpc-message"] == "m" * 40_000


def test_streams_beyond_the_advertised_maximum_are_refused() -> None:
    """Calls whose request never ends hold their streams; one past SETTINGS_MAX_CONCURRENT_STREAMS
    is refused (RST_STREAM REFUSED_STREAM), and the connection stays up."""
    from ordertasks.infra.emulator.h2grpc import MAX_STREAMS

    async def scenario() -> tuple[list[Frame], bool]:
        connection, wire = _connection()
        encoder = hpack.Encoder()
        opened = b"".join(http2.frame(http2.HEADERS, http2.END_HEADERS, 2 * i + 1,
                                      encoder.encode([(b":method", b"POST"), (b":path", b"/s/Echo")]))
                          for i in range(MAX_STREAMS + 1))
        connection.data_received(http2.PREFACE + opened)
        return _sent_frames(wire), wire.closed
    sent, closed = asyncio.run(scenario())
    resets = [f for f in sent if f.kind == http2.RST_STREAM]
    assert not closed and [(f.stream, f.payload) for f in resets] == [(2 * MAX_STREAMS + 1, b"\x00\x00\x00\x07")]
