"""Group similar violations: same property and cause, same program type and mechanism, same set of fault kinds.

The signature is deliberately coarse and explainable (no learned distance): a reviewer reads one
representative case per cluster (the lowest run index) and the cluster's size says how often it recurs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Cluster:
    """Violations sharing a signature; ``runs`` sorted, the first is the representative case."""

    prop: str
    cause: str
    program_type: str
    mechanism: str
    faults: tuple[str, ...]
    runs: tuple[int, ...]

    @property
    def key(self) -> str:
        faults = "+".join(self.faults) or "no fault"
        return f"{self.prop}/{self.cause} | {self.program_type} {self.mechanism} | {faults}"


def cluster(records: Iterable[dict[str, Any]]) -> list[Cluster]:
    """Clusters of the violations in ``records``, largest first (then by key)."""
    groups: dict[tuple[str, str, str, str, tuple[str, ...]], list[int]] = {}
    for rec in records:
        faults = tuple(sorted(set(rec.get("faults", []))))
        for v in rec.get("violations", []):
            key = (v["property"], v["cause"], rec["program_type"], rec["mechanism"], faults)
            groups.setdefault(key, []).append(rec["index"])
    out = [Cluster(*key, tuple(sorted(set(runs)))) for key, runs in groups.items()]
    return sorted(out, key=lambda c: (-len(c.runs), c.key))
