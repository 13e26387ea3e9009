"""Group similar violations: same property, same cause, same mechanism.

The signature is deliberately coarse and explainable (no learned distance): a reviewer reads one
representative case per cluster (the lowest run index); the cluster lists how often each program type and
fault kind occurs in it, which shows whether a fault is common to all its runs (a likely cause) or not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Cluster:
    """Violations sharing a signature; ``runs`` sorted, the first is the representative case."""

    prop: str
    cause: str
    mechanism: str
    runs: tuple[int, ...]
    programs: tuple[tuple[str, int], ...]
    faults: tuple[tuple[str, int], ...]

    @property
    def key(self) -> str:
        faults = ", ".join(f"{k} {n}" for k, n in self.faults) or "no fault"
        programs = ", ".join(f"{k} {n}" for k, n in self.programs)
        return f"{self.prop}/{self.cause} | {self.mechanism} | programs: {programs} | faults: {faults}"


def cluster(records: Iterable[dict[str, Any]]) -> list[Cluster]:
    """Clusters of the violations in ``records``, largest first (then by key)."""
    groups: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for rec in records:
        for v in rec.get("violations", []):
            groups.setdefault((v["property"], v["cause"], rec["mechanism"]), {})[rec["index"]] = rec
    out = []
    for (prop, cause, mech), recs in groups.items():
        programs = Counter(r["program_type"] for r in recs.values())
        faults = Counter(k for r in recs.values() for k in set(r.get("faults", [])))
        out.append(Cluster(prop, cause, mech, tuple(sorted(recs)), tuple(programs.most_common()),
                           tuple(faults.most_common())))  # fmt: skip
    return sorted(out, key=lambda c: (-len(c.runs), c.key))
