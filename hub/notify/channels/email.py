"""The ``email`` channel: through the config set's ``smtp`` server, with apprise (which
speaks STARTTLS, implicit TLS and plain SMTP). apprise reports success or failure only,
so every failure is retried up to ``retry.attempts``."""

from __future__ import annotations

from typing import Any

from gridcall.config.notify import EmailChannel, NotifyFile
from gridcall.hub.notify.channels.base import DeliveryError, Message, Verdict, retry_always
from gridcall.hub.notify.channels.via_apprise import notify_with


class Email:
    type = "email"

    def target(self, channel: EmailChannel) -> str:
        return f"email to {', '.join(channel.to)}"

    def body(self, channel: EmailChannel, message: Message) -> str:
        return message.text

    def send(self, channel: EmailChannel, settings: NotifyFile, message: Message,
             timeout: float) -> None:
        smtp = settings.smtp
        if smtp is None:  # refused by NotifyFile's validation; kept for the type checker
            raise DeliveryError("an e-mail channel needs the smtp section")
        user, password = smtp.credentials()
        target: dict[str, Any] = {
            "cto": timeout, "rto": timeout,
            "schema": "mailto" if smtp.security == "insecure" else "mailtos",
            "host": smtp.host, "port": smtp.port, "secure_mode": smtp.security,
            "from_addr": smtp.sender, "targets": list(channel.to), "user": user,
            "password": password}
        notify_with(target, self.body(channel, message), message.title)

    def classify(self, error: BaseException) -> Verdict:
        return retry_always(error)


CHANNEL = Email()
