"""Notification channels by their ``type:`` in notify.yaml: one module each.

Adding a channel: its settings model in :mod:`gridcall.config.notify` (joined to the
``Channel`` union), one module here implementing :class:`~.base.Channel`, and one line in
:data:`CHANNELS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gridcall.hub.notify.channels import email, via_apprise, webhook
from gridcall.hub.notify.channels.base import Channel, DeliveryError, Message, Verdict

CHANNELS: Mapping[str, Channel[Any]] = MappingProxyType({
    "webhook": webhook.CHANNEL,
    "email": email.CHANNEL,
    "apprise": via_apprise.CHANNEL,
})

__all__ = ["CHANNELS", "Channel", "DeliveryError", "Message", "Verdict"]
