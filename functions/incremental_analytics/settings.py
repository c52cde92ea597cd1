"""The runtime's settings, read once from the function's environment into a typed object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from incremental_analytics.domain.events import IdentityMode

# Partitions of the outbox's pending outcomes in its `undelivered` index (writes spread over them).
PENDING_SHARDS = 4

# The time series is written to one partition an event type and day: packed, one partition key carries some 12,000
# events a second (docs/design.md#the-time-series). Releases before spread it over four by the user's hash, and a
# stack updated in place holds their items for up to TimeSeriesRetentionDays: the evaluation reads all four.
TIMESERIES_SHARDS = 1
TIMESERIES_SHARDS_BEFORE = 4


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    rules_table: str
    counters_table: str
    audit_table: str
    timeseries_table: str
    data_bucket: str
    event_bus_name: str
    profiles_key_name: str = "_profileId"
    profiles_endpoint_key_name: str = "endpoint_id"
    identity: IdentityMode = IdentityMode.USER_OR_ENDPOINT
    dedupe_retention_days: int = 7
    timeseries_retention_days: int = 400
    timeseries_shards: int = TIMESERIES_SHARDS
    rules_cache_seconds: int = 30
    pending_shards: int = PENDING_SHARDS
    lateness_hours: int = 24
    redeliver_after_seconds: int = 300
    timeseries_for_all_events: bool = True

    @property
    def timeseries_read_shards(self) -> range:
        """The time series' shards the evaluation reads: those written now, and those of earlier releases."""
        return range(max(self.timeseries_shards, TIMESERIES_SHARDS_BEFORE))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def required(name: str) -> str:
            value = env.get(name, "")
            if not value:
                raise SettingsError(f"the function's environment lacks {name}")
            return value

        def number(name: str, default: int) -> int:
            text = env.get(name, "")
            try:
                return int(text) if text else default
            except ValueError:
                raise SettingsError(f"{name} must be a whole number, not {text!r}") from None

        identity = env.get("IDENTITY") or IdentityMode.USER_OR_ENDPOINT.value
        if identity not in {mode.value for mode in IdentityMode}:
            choices = ", ".join(mode.value for mode in IdentityMode)
            raise SettingsError(f"IDENTITY must be one of {choices}, not {identity!r}")

        for_all = env.get("TIMESERIES_FOR_ALL_EVENTS") or "true"
        if for_all not in {"true", "false"}:
            raise SettingsError(f"TIMESERIES_FOR_ALL_EVENTS must be true or false, not {for_all!r}")

        return cls(
            rules_table=required("RULES_TABLE"),
            counters_table=required("COUNTERS_TABLE"),
            audit_table=required("AUDIT_TABLE"),
            timeseries_table=required("TIMESERIES_TABLE"),
            data_bucket=required("DATA_BUCKET"),
            event_bus_name=required("EVENT_BUS_NAME"),
            profiles_key_name=env.get("PROFILES_KEY_NAME") or "_profileId",
            profiles_endpoint_key_name=env.get("PROFILES_ENDPOINT_KEY_NAME") or "endpoint_id",
            identity=IdentityMode(identity),
            dedupe_retention_days=number("DEDUPE_RETENTION_DAYS", 7),
            timeseries_retention_days=number("TIMESERIES_RETENTION_DAYS", 400),
            timeseries_shards=number("TIMESERIES_SHARDS", TIMESERIES_SHARDS),
            rules_cache_seconds=number("RULES_CACHE_SECONDS", 30),
            pending_shards=number("PENDING_SHARDS", PENDING_SHARDS),
            lateness_hours=number("LATENESS_HOURS", 24),
            redeliver_after_seconds=number("REDELIVER_AFTER_SECONDS", 300),
            timeseries_for_all_events=for_all == "true",
        )
