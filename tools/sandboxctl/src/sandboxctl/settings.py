"""sandboxctl runs a part of every service (replay, reconcile, tokens, webhooks, test webhooks
to ingest), so it is given every setting; each command checks (`require`) the secrets it
needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from enforcer.settings import ActuatorSettings, TickerSettings
from ingest.settings import IngestSettings
from projector.settings import ProjectorSettings
from status_api.settings import StatusApiSettings


@dataclass(frozen=True, kw_only=True)
class Settings(
    IngestSettings,
    ProjectorSettings,
    StatusApiSettings,
    TickerSettings,
    ActuatorSettings,
):
    REQUIRED: ClassVar[tuple[str, ...]] = ()
