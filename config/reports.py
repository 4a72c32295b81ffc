"""Calls from people (``hub.yaml`` → ``hub.reports``): where their photos are kept and how
large they may be, where unclassified calls are triaged, and the public intake for
residents (off unless turned on). See docs/desk.md, "Calls from people"."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from gridcall.config.base import Duration, Model

MAX_PHOTOS = 5
"""Photos one report or note may carry (issue 18: 0-5)."""


class PublicIntake(Model):
    """``POST /v1/public/reports`` for residents, without a unit's token. Off by default:
    a town turns it on when it is ready to answer what comes in. Each report lands in
    triage (matter ``UNCLASSIFIED``), whatever the resident chose."""

    enabled: bool = False
    per_address: int = Field(default=5, ge=1, le=10_000)
    """Reports one client address may file per ``window``; the next is a 429."""
    window: Duration = timedelta(hours=1)
    photos: bool = True
    """Whether residents may attach photos (each checked as any other)."""


class ReportSettings(Model):
    photo_dir: str = "var/hub-photos"
    """Where hubs before the desk store kept photos (folders 0700, files 0600, one file
    per photo named by its SHA-256): the active hub imports them into the desk store at
    start (hub/desk/photos.py), and reads one from here while the store lacks it."""
    photo_max_bytes: int = Field(default=2 * 2**20, ge=1024, le=16 * 2**20)
    """The largest photo taken (its decoded bytes); a larger one is a 413."""
    triage: Literal["town", "district"] = "town"
    """Who handles a call nobody classified (matter ``UNCLASSIFIED``): the town of the
    place it is in (the town sub-centre runs residents' channel, DOMAIN.md's third job)
    or the district (区政府兜底). Either way a missed deadline takes it to the district."""
    public: PublicIntake = PublicIntake()

    def max_body_bytes(self) -> int:
        """The body a route that takes photos reads at most: its photos in base64 (4
        bytes per 3) and 64 KiB for the rest."""
        return MAX_PHOTOS * ((self.photo_max_bytes + 2) // 3 * 4) + 64 * 1024


__all__ = ["MAX_PHOTOS", "PublicIntake", "ReportSettings"]
