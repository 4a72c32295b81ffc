"""The ``apprise`` channel: any service apprise knows (DingTalk, WeCom, SMS gateways...),
given as an apprise URL held in an environment variable; and the one place apprise is
called, for this channel and e-mail.

apprise tells only whether a send worked; why it did not is only in its log. That text is
quoted in our own log line for people (:class:`AppriseReasons`, while a notifier is open)
but never decides anything: every failure of these channels is retried up to
``retry.attempts``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import apprise

from gridcall.config.notify import AppriseChannel, NotifyFile, secret
from gridcall.hub.notify.channels.base import DeliveryError, Message, Verdict, retry_always


class AppriseReasons(logging.Handler):
    """Remembers, per thread, the last warning apprise logged (each attempt runs in its
    own worker thread), to quote it when a send fails. Sits on apprise's logger only while
    a notifier is open (:meth:`listen`): no import-time change to a library's logging."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()
        self.users = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.local.message = record.getMessage()

    def take(self) -> str | None:
        message: str | None = getattr(self.local, "message", None)
        self.local.message = None
        return message

    def listen(self) -> None:
        self.users += 1
        logging.getLogger("apprise").addHandler(self)

    def unlisten(self) -> None:
        self.users -= 1
        if self.users == 0:
            logging.getLogger("apprise").removeHandler(self)


REASONS = AppriseReasons()


def notify_with(target: dict[str, Any] | apprise.NotifyBase, body: str, title: str) -> None:
    """One apprise send to a URL dictionary (secrets stay out of URL strings, where one
    unquoted '@' or '/' would break them) or a plugin; DeliveryError if it failed."""
    plugin = target if isinstance(target, apprise.NotifyBase) else apprise.Apprise.instantiate(
        target, suppress_exceptions=False)
    if plugin is None:
        raise DeliveryError("apprise could not set up the channel")
    REASONS.take()
    if not plugin.notify(body=body, title=title):
        raise DeliveryError(REASONS.take() or "apprise reported a failure without a reason")


class AppriseUrl:
    type = "apprise"

    def target(self, channel: AppriseChannel) -> str:
        return f"apprise URL from ${channel.url_env}"

    def body(self, channel: AppriseChannel, message: Message) -> str:
        return message.text

    def send(self, channel: AppriseChannel, settings: NotifyFile, message: Message,
             timeout: float) -> None:
        url = secret(channel.url_env)
        if not url:
            raise DeliveryError(f"environment variable {channel.url_env} is empty")
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise DeliveryError(f"${channel.url_env} is not an apprise URL apprise can use")
        notify_with(plugin, self.body(channel, message), message.title)

    def classify(self, error: BaseException) -> Verdict:
        return retry_always(error)


CHANNEL = AppriseUrl()
