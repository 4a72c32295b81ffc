"""Notification channels per unit: ``notify.yaml`` (optional) in a config set.

Alerts are pushed on MQTT anyway; these channels reach the people of a unit where they
are: a webhook (their app or a chat bot), e-mail (the duty mailbox), or any other service
apprise knows (DingTalk, WeCom, SMS gateways, ...) given as an apprise URL. Example::

    smtp:                                  # shared by every e-mail channel
      host: smtp.example.org
      port: 587
      security: starttls                   # starttls | ssl | insecure
      sender: gridcall@example.org
      username_env: GRIDCALL_SMTP_USER     # names of environment variables,
      password_env: GRIDCALL_SMTP_PASSWORD # never the secrets themselves
    retry: {attempts: 5, backoff: 2s, max_backoff: 5m, timeout: 10s}
    units:
      dasha:
        - {type: webhook, url: "https://ops.dasha.example/gridcall", token_env: DASHA_HOOK_TOKEN}
        - {type: email, to: [duty@dasha.example]}
      huangpu:
        - {type: apprise, url_env: HUANGPU_DINGTALK_URL}
      operations_maintenance:   # a department: told of every step it leads (device faults)
        - {type: email, to: [ops@maintenance.example]}

Secrets never sit in the YAML: a webhook's bearer token, the SMTP password and whole
apprise URLs (they carry tokens) come from the environment variables named here, read at
each delivery, so a rotated secret needs no restart. ``gridcall hub run`` refuses to
start while one of them is unset.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, StringConstraints, field_validator, model_validator

from gridcall.config.base import Duration, Id, Model, read_env, unset_envs

Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class WebhookChannel(Model):
    """HTTP POST of JSON (apprise's ``json://`` payload: ``version``, ``title``,
    ``message``, ``type``; ``message`` is the alert as wire JSON, see docs/api.md)."""

    type: Literal["webhook"]
    secret_envs: ClassVar[tuple[str, ...]] = ("token_env",)
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]
    token_env: str | None = None
    """Sent as ``Authorization: Bearer <token>`` when given."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers that are not secret (a secret goes in ``token_env``)."""

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.username or parts.password:
            raise ValueError("credentials in a webhook URL would sit in the config in plain "
                             "text; give the token's environment variable in token_env")
        if not parts.hostname:
            raise ValueError(f"{url!r} has no host")
        return url


class EmailChannel(Model):
    """E-mail through the config set's ``smtp`` server."""

    type: Literal["email"]
    secret_envs: ClassVar[tuple[str, ...]] = ()
    needs_smtp: ClassVar[bool] = True
    to: tuple[Email, ...] = Field(min_length=1)


class AppriseChannel(Model):
    """Any service apprise supports, as an apprise URL held in an environment variable
    (such URLs carry tokens, so they never sit in the YAML)."""

    type: Literal["apprise"]
    secret_envs: ClassVar[tuple[str, ...]] = ("url_env",)
    url_env: str


Channel = Annotated[WebhookChannel | EmailChannel | AppriseChannel, Field(discriminator="type")]


class SmtpSettings(Model):
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    """Default: 587 for starttls, 465 for ssl, 25 for insecure."""
    security: Literal["starttls", "ssl", "insecure"] = "starttls"
    sender: Email
    username_env: str | None = None
    password_env: str | None = None

    def credentials(self) -> tuple[str | None, str | None]:
        """Username and password from the environment; KeyError naming a missing one."""
        return read_env(self.username_env), read_env(self.password_env)


class RetrySettings(Model):
    """A failed delivery is tried again after ``backoff``, doubling up to ``max_backoff``
    (with ±20 % jitter), ``attempts`` times in all; then it is given up, logged as an
    error and counted. ``timeout`` bounds each attempt's connect and read."""

    attempts: int = Field(default=5, ge=1, le=100)
    backoff: Duration = timedelta(seconds=2)
    max_backoff: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)


class NotifyFile(Model):
    smtp: SmtpSettings | None = None
    retry: RetrySettings = RetrySettings()
    units: dict[Id, tuple[Channel, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _smtp_for_email(self) -> NotifyFile:
        users = [u for u, chans in self.units.items()
                 if any(getattr(c, "needs_smtp", False) for c in chans)]
        if users and self.smtp is None:
            raise ValueError(f"units {users} have e-mail channels but there is no 'smtp' "
                             "section saying which server sends them")
        return self

    def unset_env(self) -> list[str]:
        """``key.path: VARIABLE`` for each environment variable named here but not set."""
        out: list[str] = []
        if self.smtp is not None:
            out += [f"smtp.{m}" for m in unset_envs(self.smtp, ("username_env", "password_env"))]
        for unit, chans in self.units.items():
            for i, chan in enumerate(chans):
                out += [f"units.{unit}[{i}].{m}" for m in unset_envs(chan, chan.secret_envs)]
        return out


def secret(name: str | None) -> str | None:
    """The value of the environment variable ``name``; KeyError naming it if unset."""
    return read_env(name)
