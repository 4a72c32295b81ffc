"""The MQTT client gridcall's publishers use (the edge agent's uplink, the hub desk's
connection): aiomqtt's, with two things aiomqtt 2.5 drops put back from its paho client.

**The PUBACK's reason code.** Under MQTT v5 a broker answers a QoS 1 publish it refuses
with a PUBACK carrying the reason (mosquitto's ACL: 0x87 "Not authorized"). paho 2 hands
that code to ``on_publish``; aiomqtt's ``_on_publish`` ignores it and its ``publish()``
returns None whatever the broker said. :class:`MqttClient` installs its own
``on_publish`` on the paho client it owns (then calls aiomqtt's), and its
:meth:`~MqttClient.publish` raises :class:`PublishRefused` naming the topic and the
reason. Under MQTT 3.1.1 there is no reason code: mosquitto acknowledges a publish its
ACL refuses like any other and drops it, so nobody can tell (docs/security.md).

**A connection closed before the CONNACK.** aiomqtt's ``_on_disconnect`` ignores a
disconnect that comes before the CONNACK, so its connect waits out its whole timeout
(10 s) when something accepts the TCP connection and closes it (a relay or a proxy whose
broker is down, a broker going down or at its connection limit). Here that fails the
connect at once with :class:`~gridcall.wire.broker.ClosedBeforeConnack`, and the caller's
one reconnect loop (:class:`gridcall.wire.backoff.Reconnect`, told ``UNANSWERED`` by
:func:`~gridcall.wire.broker.mqtt_outcome`) decides when to try again.

**A connection lost with publishes in flight.** aiomqtt does not wake a publish waiting
for its PUBACK when the connection drops, so it waits its timeout (10 s) too, and the
caller with it (the agent's window of 16, the desk between two messages). Here it raises
at once, and the message stays where it was (the agent's outbox, the desk's unpublished
alerts) for the next connection.

Which protocol: :func:`protocol_for` (MQTT v5 unless the config says ``mqtt_version:
"3.1.1"`` or the broker is one this process runs without v5, the embedded amqtt).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.types import PayloadType
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridcall.wire.broker import BrokerAddress, ClosedBeforeConnack

SESSION_NEVER_EXPIRES = 0xFFFFFFFF
"""MQTT v5 Session Expiry Interval for a session kept until it is ended on purpose."""

MqttVersion = str
"""``"5"`` or ``"3.1.1"`` (config's ``broker.mqtt_version``)."""


class PublishRefused(aiomqtt.MqttError):
    """The broker acknowledged a publish with a failure reason (MQTT v5 only): it did not
    take the message, and sending the same message again will be refused again."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"broker refused the publish on {topic}: PUBACK "
                         f"{reason.value:#04x} {reason.getName()}")

    @property
    def code(self) -> int:
        return int(self.reason.value)

    @property
    def name(self) -> str:
        """The reason's name as MQTT v5 spells it ("Not authorized")."""
        return str(self.reason.getName())

    @property
    def key(self) -> str:
        """The reason as a counter's key: ``not_authorized``, ``quota_exceeded``..."""
        return self.name.lower().replace(" ", "_")


def protocol_for(address: BrokerAddress, mqtt_version: MqttVersion = "5"
                 ) -> aiomqtt.ProtocolVersion:
    """MQTT v5 unless the config asks for 3.1.1 or the broker does not speak v5 (one this
    process runs without it: :attr:`BrokerAddress.speaks_mqtt5`)."""
    if mqtt_version == "5" and address.speaks_mqtt5:
        return aiomqtt.ProtocolVersion.V5
    return aiomqtt.ProtocolVersion.V311


class MqttClient(aiomqtt.Client):
    """An :class:`aiomqtt.Client` whose :meth:`publish` raises :class:`PublishRefused`
    on a refusing PUBACK and whose connect fails at once on a connection closed before
    its CONNACK (the module doc says why both are needed)."""

    def __init__(self, address: BrokerAddress, *, protocol: aiomqtt.ProtocolVersion,
                 **kwargs: Any) -> None:
        super().__init__(address.host, address.port, tls_context=address.tls_context(),
                         protocol=protocol, **kwargs)
        self.address = address
        self.protocol = protocol
        self._refused: dict[int, ReasonCode] = {}
        self._lost: ReasonCode | None = None
        """Why the connection dropped, once it did."""
        # paho calls one on_publish and one on_disconnect: ours, which then call aiomqtt's
        self._client.on_publish = self._on_puback
        self._client.on_disconnect = self._on_early_disconnect

    @property
    def mqtt5(self) -> bool:
        return self.protocol is aiomqtt.ProtocolVersion.V5

    def _on_puback(self, client: paho.Client, userdata: Any, mid: int,
                   reason_code: ReasonCode, properties: Properties) -> None:
        if reason_code.is_failure:  # only a v5 PUBACK can carry one
            self._refused[mid] = reason_code
        self._on_publish(client, userdata, mid, reason_code, properties)

    def _on_early_disconnect(self, client: paho.Client, userdata: Any,
                             flags: paho.DisconnectFlags, reason_code: ReasonCode,
                             properties: Properties | None = None) -> None:
        if not self._connected.done():
            # __aenter__ awaits this future, so the exception is always retrieved
            self._connected.set_exception(ClosedBeforeConnack(
                f"the connection to {self.address} closed before the broker's CONNACK "
                f"({reason_code})"))
            return
        self._on_disconnect(client, userdata, flags, reason_code, properties)
        # aiomqtt leaves a publish waiting for its PUBACK when the connection drops: it
        # then hangs until its timeout (10 s), holding up the caller's reconnect. Wake
        # every one: publish() sees no PUBACK came and raises.
        self._lost = reason_code
        for confirmation in self._pending_publishes.values():
            confirmation.set()

    async def publish(  # type: ignore[override]  # keyword-only after payload
        self, topic: str, payload: PayloadType = None, qos: int = 0,
        retain: bool = False, properties: Properties | None = None, *,
        timeout: float | None = None,  # noqa: ASYNC109  # aiomqtt's signature
    ) -> None:
        """As aiomqtt's (whose body this follows), and :class:`PublishRefused` if the
        broker's PUBACK says it refused the message; an :class:`aiomqtt.MqttError` at
        once if the connection drops before the PUBACK (aiomqtt waits its timeout)."""
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            if self._disconnected.done() and self._disconnected.exception():
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message"
                                            ) from self._disconnected.exception()
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        try:
            if not info.is_published():
                confirmation = asyncio.Event()
                with self._pending_call(info.mid, confirmation, self._pending_publishes):
                    await self._wait_for(confirmation.wait(), timeout=timeout)
        finally:
            refused = self._refused.pop(info.mid, None)
        if refused is not None:
            raise PublishRefused(topic, refused)
        if not info.is_published():
            raise aiomqtt.MqttError(f"the connection to {self.address} dropped before the "
                                    f"broker's PUBACK on {topic} ({self._lost})")


__all__ = ["SESSION_NEVER_EXPIRES", "MqttClient", "MqttVersion", "PublishRefused", "protocol_for"]
