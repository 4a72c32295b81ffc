"""The readings link's MQTT framing (hub/ingest/mqttlink.py), without a broker: the packets
a broker sends, cut at every byte, give the same PUBLISHes in the same order, for MQTT v5
and 3.1.1; a QoS 2 PUBLISH or a 5-byte remaining length ends the connection. (The link
against a real mosquitto: tests/test_ingest*.py, test_fault_matrix.py, test_tls.py.)"""

from __future__ import annotations

import asyncio

import pytest

from gridcall.hub.ingest.mqttlink import Connect, Link, LinkError, varint


def publish(topic: str, payload: bytes, *, qos: int, mid: int, v5: bool,
            props: bytes = b"\x00") -> bytes:
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t
    if qos:
        body += mid.to_bytes(2, "big")
    if v5:
        body += props
    body += payload
    return bytes((0x30 | qos << 1,)) + varint(len(body)) + body


def stream(v5: bool) -> tuple[bytes, list[tuple[int, int, str, bytes]]]:
    """A CONNACK, then PUBLISHes of 0 B to 20 KB (1- to 3-byte remaining lengths),
    QoS 0 and 1, one with v5 properties, and a PINGRESP among them."""
    expected = [(1, 7, "gridcall/v1/readings/a1", b"x" * 2500),
                (0, 0, "gridcall/v1/readings/a2", b""),
                (1, 65535, "gridcall/v1/readings/\u00e9", bytes(range(256)) * 80),
                (1, 8, "t", b"{}")]
    data = b"\x20\x03\x01\x00\x00" if v5 else b"\x20\x02\x01\x00"
    for i, (qos, mid, topic, payload) in enumerate(expected):
        props = b"\x05\x03\x00\x02ab" if i == 3 else b"\x00"  # content type "ab"
        data += publish(topic, payload, qos=qos, mid=mid, v5=v5, props=props)
        if i == 1:
            data += b"\xd0\x00"
    return data, expected


def link(v5: bool) -> tuple[Link, list[tuple[int, int, str, bytes]]]:
    got: list[tuple[int, int, str, bytes]] = []
    connect = Connect("c", receive_maximum=100 if v5 else None)
    return Link(lambda *p: got.append(p), connect), got


@pytest.mark.parametrize("v5", [True, False])
async def test_packets_cut_anywhere_are_read_whole_and_in_order(v5: bool) -> None:
    data, expected = stream(v5)
    for cut in [1, 2, 3, 5, 7, 64, 1000, 4096, len(data)]:
        proto, got = link(v5)
        for i in range(0, len(data), cut):
            proto.data_received(data[i:i + cut])
        assert got == expected, f"chunks of {cut} bytes"
        assert proto.connack.done()
        assert proto.connack.result() is True  # session present
        assert not proto.closed.done()


async def test_a_refused_connack_names_its_reason() -> None:
    proto, _ = link(True)
    proto.data_received(b"\x20\x03\x00\x86\x00")  # bad user name or password
    with pytest.raises(LinkError, match="CONNACK Bad user name or password"):
        await proto.connack


@pytest.mark.parametrize("packet", [
    publish("t", b"p", qos=2, mid=1, v5=True),
    b"\x30\xff\xff\xff\xff\x01",
], ids=["qos2", "length-over-4-bytes"])
async def test_what_the_link_cannot_take_ends_the_connection(packet: bytes) -> None:
    proto, got = link(True)
    proto.data_received(b"\x20\x03\x00\x00\x00" + packet)
    assert got == []
    with pytest.raises(LinkError):
        await asyncio.wait_for(proto.closed, 1)
