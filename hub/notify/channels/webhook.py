"""The ``webhook`` channel: an HTTP POST of JSON, with httpx so that the receiver's status
is the library's own result (a 401 is given up at once, a 503 retried).

The payload is apprise's ``json://`` one, as before: ``version``, ``title``, ``message``
(the alert as wire JSON), ``attachments`` and ``type``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from gridcall.config.notify import NotifyFile, WebhookChannel, secret
from gridcall.hub.notify.channels.base import DeliveryError, Message, Verdict, http_verdict

USER_AGENT = "gridcall-notify"


class Webhook:
    type = "webhook"

    def target(self, channel: WebhookChannel) -> str:
        parts = urlsplit(channel.url)
        return f"webhook {parts.scheme}://{parts.netloc}{parts.path}"

    def body(self, channel: WebhookChannel, message: Message) -> str:
        return message.json

    def send(self, channel: WebhookChannel, settings: NotifyFile, message: Message,
             timeout: float) -> None:
        headers = {"User-Agent": USER_AGENT, **channel.headers}
        token = secret(channel.token_env)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        payload = {"version": "1.0", "title": message.title,
                   "message": self.body(channel, message), "attachments": [], "type": "info"}
        try:
            response = httpx.post(channel.url, json=payload, headers=headers, timeout=timeout,
                                  follow_redirects=True)  # as apprise did
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc or 'no answer'}") from exc
        if not response.is_success:
            raise DeliveryError(f"{response.reason_phrase or 'HTTP'} - error="
                                f"{response.status_code}", status=response.status_code)

    def classify(self, error: BaseException) -> Verdict:
        return http_verdict(error.status if isinstance(error, DeliveryError) else None)


CHANNEL = Webhook()
