"""Alertmanager-style routing: which receivers an alert goes to, grouped how, timed how."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from alerting.clock import us
from schemas.alerting import RootRoute, Route


@dataclass(frozen=True)
class Target:
    """One receiver an alert is routed to, with the settings of the route that matched."""

    route_id: str
    receiver: str
    group_by: tuple[str, ...]
    group_wait_us: int
    group_interval_us: int
    repeat_interval_us: int
    send_resolved: bool

    def group_key(self, labels: dict[str, str]) -> str:
        """Alerts with the same route and the same ``group_by`` values share a notification."""
        values = ",".join(f"{name}={labels.get(name, '')}" for name in self.group_by)
        return f"{self.route_id}{{{values}}}"


def _us(value: timedelta | None) -> int:
    assert value is not None
    return us(value)


def _inherit(parent: Target, route: Route, route_id: str) -> Target:
    return Target(
        route_id=route_id,
        receiver=route.receiver if route.receiver is not None else parent.receiver,
        group_by=tuple(route.group_by) if route.group_by is not None else parent.group_by,
        group_wait_us=_us(route.group_wait)
        if route.group_wait is not None
        else parent.group_wait_us,
        group_interval_us=(
            _us(route.group_interval)
            if route.group_interval is not None
            else parent.group_interval_us
        ),
        repeat_interval_us=(
            _us(route.repeat_interval)
            if route.repeat_interval is not None
            else parent.repeat_interval_us
        ),
        send_resolved=(
            route.send_resolved if route.send_resolved is not None else parent.send_resolved
        ),
    )


def targets(root: RootRoute, labels: dict[str, str]) -> list[Target]:
    """The receivers for a label set: the deepest matching routes, ``continue`` honoured."""
    top = Target(
        "0",
        root.receiver or "console",
        tuple(root.group_by or ()),
        _us(root.group_wait),
        _us(root.group_interval),
        _us(root.repeat_interval),
        bool(root.send_resolved),
    )
    return _walk(root, top, labels)


def _walk(route: RootRoute | Route, here: Target, labels: dict[str, str]) -> list[Target]:
    found: list[Target] = []
    for index, child in enumerate(route.routes):
        if all(labels.get(name) == value for name, value in child.match.items()):
            found += _walk(child, _inherit(here, child, f"{here.route_id}.{index}"), labels)
            if not child.continue_:
                break
    return found or [here]
