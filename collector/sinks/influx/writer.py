"""InfluxDB 2.x through ``influxdb-client``: reachability, tier buckets, and one write.

`InfluxWriter.write` sends one gzip'd batch and classifies the outcome for the outbox:
acknowledged, retry later (with the server's Retry-After when it gives one), or refused for
good (the batch is set aside). The token never appears in a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from influxdb_client import BucketRetentionRules, InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from collector.sinks.errors import Refused, RetryLater
from schemas.config import TIERS, InfluxConfig

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({401, 403, 404, 408, 425, 429, 500, 502, 503, 504})
"""Statuses that delay a batch. A refused token or a missing bucket is fixed by the operator,
so those batches wait rather than being set aside."""


def _server_message(error: ApiException) -> str:
    body = error.body.decode("utf-8", "replace") if isinstance(error.body, bytes) else error.body
    try:
        return str(json.loads(body or "").get("message", body))
    except (ValueError, AttributeError):
        return (body or error.reason or "").strip()[:2000]


def _retry_after(error: ApiException) -> float | None:
    headers: Mapping[str, str] = error.headers or {}
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class BucketPlan:
    tier: str
    bucket: str
    retention: timedelta | None
    action: str  # "exists", "create", "update retention", "retention differs"


class InfluxWriter:
    """A client for one server; safe to use from one thread at a time."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        self.client = InfluxDBClient(
            url=config.url,
            token=config.secret_token(),
            org=config.org,
            timeout=int(config.timeout.total_seconds() * 1000),
            enable_gzip=True,
            verify_ssl=config.verify_tls,
        )
        self._writes = self.client.write_api(write_options=SYNCHRONOUS)

    def close(self) -> None:
        self.client.close()

    def write(self, bucket: str, lines: list[str]) -> None:
        """Store one batch; raises `RetryLater` or `Refused` when it was not stored."""
        body = "\n".join(lines).encode()
        try:
            self._writes.write(bucket=bucket, org=self.config.org, record=body)
        except ApiException as error:
            message = f"InfluxDB at {self.config.url} bucket {bucket}: HTTP {error.status}: " + (
                _server_message(error)
            )
            if error.status in RETRYABLE_STATUS or error.status is None:
                raise RetryLater(message, _retry_after(error)) from None
            raise Refused(error.status, _server_message(error)) from None
        except (HTTPError, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise RetryLater(f"InfluxDB at {self.config.url} unreachable: {reason}") from None

    def reachable(self) -> bool:
        return bool(self.client.ping())

    def plan_buckets(self, retention: dict[str, timedelta | None]) -> list[BucketPlan]:
        """What `apply_buckets` would do for each tier's bucket."""
        api = self.client.buckets_api()
        plans = []
        for tier in TIERS:
            name = self.config.buckets.for_tier(tier)
            bucket = api.find_bucket_by_name(name)
            wanted = retention.get(tier)
            if bucket is None:
                plans.append(BucketPlan(tier, name, wanted, "create"))
                continue
            current = _retention_of(bucket)
            action = "exists" if current == wanted else "retention differs"
            plans.append(BucketPlan(tier, name, wanted, action))
        return plans

    def apply_buckets(self, plans: list[BucketPlan], *, apply_retention: bool) -> None:
        """Create missing buckets; change an existing bucket's retention only when asked."""
        api = self.client.buckets_api()
        for plan in plans:
            rules = _rules(plan.retention)
            if plan.action == "create":
                api.create_bucket(
                    bucket_name=plan.bucket, retention_rules=rules, org=self.config.org
                )
                log.info("created InfluxDB bucket %s (retention %s)", plan.bucket, plan.retention)
            elif plan.action == "retention differs" and apply_retention:
                bucket = api.find_bucket_by_name(plan.bucket)
                bucket.retention_rules = rules
                api.update_bucket(bucket)
                log.info("set retention of bucket %s to %s", plan.bucket, plan.retention)


def _rules(retention: timedelta | None) -> list[BucketRetentionRules]:
    seconds = 0 if retention is None else int(retention.total_seconds())
    return [BucketRetentionRules(type="expire", every_seconds=seconds)]


def _retention_of(bucket: object) -> timedelta | None:
    rules = getattr(bucket, "retention_rules", None) or []
    seconds = next((r.every_seconds for r in rules if r.every_seconds), 0)
    return timedelta(seconds=seconds) if seconds else None
