"""What-if replay: the checks recorded in pump logs, run again against a candidate library (issue 5, item 7).

Theory of operation
-------------------
Every ``ders_check`` event carries the selection (care area, drug, therapy, concentration) and every value the
pump checked, encoded exactly (OI-DERS-5). :func:`decode_request` rebuilds the pump's
:class:`~openinfusion.pump.ders.DersRequest` from them without rounding (rates, volumes and durations must
decode to whole nL/h, nL and microseconds, or the log is refused). :func:`replay` checks each request with the
candidate library's :class:`~openinfusion.pump.ders.DersIndex`, the very code the pump runs, and compares the
verdict with the logged one (:class:`Change`). A check that only repeated the request of an open alert (the
clinician confirming an override) is the same program: it is not replayed twice (``cqi.CqiData.repeats``).

A replay against the library the checks were logged with must reproduce every logged verdict and limit;
:attr:`WhatIf.inconsistent` lists any that do not (there should be none), so the report can say so.

Use, not only checks: the logs' infusions are counted, so the candidate's alerts project to *alerts per 100
infusions* beside the logged rate (:attr:`WhatIf.projected_alerts_per_100`). And a replay only exercises
the entries the logs used: given the library in use, :func:`unexercised` lists every change of the candidate
that no logged check reached, so "0 newly blocked" is never read as "safe" for a change nobody programmed.
"""

from __future__ import annotations

import re
import typing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import Final

from openinfusion.druglib.diff import Change as DiffChange
from openinfusion.druglib.diff import diff_libraries
from openinfusion.druglib.model import Library
from openinfusion.druglib.package import LibraryIdentity, identity_of
from openinfusion.errors import InputError, ProgramError
from openinfusion.pharmacy.cqi import Check, CqiData, LimitCrossed, per_100
from openinfusion.pump.ders import DersIndex, DersRequest, LimitFinding, Verdict
from openinfusion.pump.eventlog import JsonValue, decode_quantity
from openinfusion.units import ML, ML_PER_H, NL_PER_ML, US_PER_S, Duration, FlowRate, Quantity, Volume, unit

_SECOND = unit("s")
_SELECTION: Final = frozenset({"area", "drug", "therapy", "concentration"})


class Change(Enum):
    """How a logged check fares against the candidate library, in the order a reviewer reads them."""

    NEWLY_BLOCKED = "newly blocked (hard limit)"  # was OK or soft; now beyond a hard limit
    NEWLY_ALERTING = "newly alerting (soft limit)"  # was OK; now needs an override
    NOT_IN_LIBRARY = "not in candidate library"  # the (care area, drug, therapy) entry was removed
    REFUSED = "refused by candidate"  # the entry no longer accepts the request (concentration, unit, weight)
    NO_LONGER_BLOCKED = "no longer blocked (soft alert)"  # was hard; now soft
    NO_LONGER_ALERTING = "no longer alerting"  # was soft or hard; now within limits
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Case:
    """One logged check replayed: old and new verdicts, what changed, and the new limits crossed (or why not)."""

    check: Check
    change: Change
    old: Verdict
    new: Verdict | None  # None when the candidate has no entry for it or refuses it
    findings: tuple[LimitFinding, ...]
    why: str  # the new limits crossed, or the reason the candidate refuses the request

    @property
    def detail(self) -> str:
        """What a reviewer needs to read: the new finding, or for a check that no longer alerts, the old one."""
        if self.change is Change.NO_LONGER_ALERTING:
            return "was: " + "; ".join(str(f) for f in self.check.findings)
        return self.why


def _field_types() -> dict[str, type]:
    """DersRequest's value fields and the type each decodes to (Quantity, FlowRate, Volume or Duration)."""
    hints = typing.get_type_hints(DersRequest)
    types = {}
    for name, hint in hints.items():
        if name in _SELECTION:
            continue
        (kind,) = [t for t in typing.get_args(hint) if t is not type(None)]
        types[name] = kind
    return types


_TYPES: Final = _field_types()


def _whole(value: Fraction, scale: int, what: str, where: str) -> int:
    scaled = value * scale
    if scaled.denominator != 1:
        raise InputError(where, f"{value} is not a whole number of {what}; the log cannot have come from a pump")
    return scaled.numerator


def decode_value(name: str, encoded: JsonValue, where: str) -> Quantity | FlowRate | Volume | Duration:
    """One logged DERS value, exactly: a Quantity, or the pump's integer FlowRate, Volume or Duration."""
    kind = _TYPES.get(name)
    if kind is None:
        raise InputError(where, f"unknown DERS value {name!r}")
    q = decode_quantity(encoded, where)
    if kind is FlowRate:
        return FlowRate(_whole(q.to(ML_PER_H, where).value, NL_PER_ML, "nL/h", where))
    if kind is Volume:
        return Volume(_whole(q.to(ML, where).value, NL_PER_ML, "nL", where))
    if kind is Duration:
        return Duration(_whole(q.to(_SECOND, where).value, US_PER_S, "microseconds", where))
    return q


def decode_request(check: Check) -> DersRequest:
    """The pump's DERS request behind a logged check. Raises InputError at the check's file and line."""
    values: dict[str, Quantity | FlowRate | Volume | Duration] = {}
    for name, encoded in check.values.items():
        try:
            values[name] = decode_value(name, encoded, f"values.{name}")
        except InputError as e:
            raise InputError(check.at.where, f"data.{e.where}: {e.why}") from None
    fields: dict[str, object] = {
        "area": check.area,
        "drug": check.drug,
        "therapy": check.therapy,
        "concentration": check.concentration,
        **values,
    }
    try:
        return DersRequest(**fields)  # type: ignore[arg-type]
    except InputError as e:
        raise InputError(check.at.where, f"{e.where}: {e.why}") from None


def _change(old: Verdict, new: Verdict) -> Change:
    if new is old:
        return Change.UNCHANGED
    if new is Verdict.HARD:
        return Change.NEWLY_BLOCKED
    if new is Verdict.OK:
        return Change.NO_LONGER_ALERTING
    return Change.NEWLY_ALERTING if old is Verdict.OK else Change.NO_LONGER_BLOCKED


def _same_findings(logged: tuple[LimitCrossed, ...], found: tuple[LimitFinding, ...]) -> bool:
    return len(logged) == len(found) and all(
        a.field == b.field.value
        and a.kind == b.kind.value
        and a.bound == b.bound.value
        and a.entered.equals(b.entered)
        and a.limit.equals(b.limit)
        for a, b in zip(logged, found, strict=True)
    )


def replay_check(index: DersIndex, check: Check) -> Case:
    """Check one logged request against ``index`` and classify the change."""
    request = decode_request(check)
    old = Verdict[check.verdict.upper()]
    if (check.area, check.drug, check.therapy) not in index.entries:
        label = check.drug if check.therapy is None else f"{check.drug} ({check.therapy})"
        return Case(check, Change.NOT_IN_LIBRARY, old, None, (), f"no entry for {label} in care area {check.area}")
    try:
        result = index.check(request)
    except ProgramError as e:
        return Case(check, Change.REFUSED, old, None, (), f"{e.where}: {e.why}")
    why = "; ".join(str(f) for f in result.findings) or "within limits"
    return Case(check, _change(old, result.verdict), old, result.verdict, result.findings, why)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Every distinct logged check replayed against one candidate library, the infusions the logs hold, and
    the candidate's changes (against the library in use, when given) that no logged check exercised."""

    candidate: LibraryIdentity
    cases: tuple[Case, ...]
    infusions: int = 0
    not_exercised: tuple[DiffChange, ...] | None = None  # None: the library in use was not given

    @property
    def logged_alerts_per_100(self) -> Fraction | None:
        """Alerts per 100 infusions as logged (distinct checks that alerted)."""
        return per_100(sum(1 for c in self.cases if c.old is not Verdict.OK), self.infusions)

    @property
    def projected_alerts_per_100(self) -> Fraction | None:
        """Alerts per 100 infusions the candidate would give on the same programs (a check it cannot run counts
        as an alert: the nurse must choose another entry)."""
        return per_100(sum(1 for c in self.cases if c.new is not Verdict.OK), self.infusions)

    def counts(self) -> dict[Change, int]:
        """Cases per change, every change listed (in :class:`Change` order)."""
        found = Counter(c.change for c in self.cases)
        return {change: found[change] for change in Change}

    def by_area(self) -> dict[str, dict[Change, int]]:
        """Cases per change for each care area, areas sorted by name."""
        return self._by(lambda c: c.check.area)

    def by_drug(self) -> dict[str, dict[Change, int]]:
        """Cases per change for each drug (all care areas together), drugs sorted by name."""
        return self._by(lambda c: c.check.drug)

    def _by(self, key: Callable[[Case], str]) -> dict[str, dict[Change, int]]:
        groups: dict[str, Counter[Change]] = {}
        for c in self.cases:
            groups.setdefault(key(c), Counter())[c.change] += 1
        return {k: {change: groups[k][change] for change in Change} for k in sorted(groups)}

    def changed(self) -> tuple[Case, ...]:
        """The cases that changed, most severe change first, then in log order."""
        order = {change: i for i, change in enumerate(Change)}
        moved = [c for c in self.cases if c.change is not Change.UNCHANGED]
        return tuple(sorted(moved, key=lambda c: (order[c.change], c.check.at.source, c.check.at.seq)))

    @property
    def same_library(self) -> tuple[Case, ...]:
        """Cases logged against the candidate itself (same content hash)."""
        return tuple(
            c for c in self.cases if c.check.library is not None and c.check.library.hash == self.candidate.hash
        )

    @property
    def inconsistent(self) -> tuple[Case, ...]:
        """Cases logged against the candidate itself whose replay differs from the log (expected: none)."""
        return tuple(
            c
            for c in self.same_library
            if c.change is not Change.UNCHANGED or not _same_findings(c.check.findings, c.findings)
        )

    def logged_libraries(self) -> Mapping[str, int]:
        """How many replayed checks ran against each logged library version (``version (hash prefix)``)."""
        found = Counter(
            f"{c.check.library.version} ({c.check.library.hash[:12]})" if c.check.library else "none"
            for c in self.cases
        )
        return dict(sorted(found.items()))


def replay(candidate: Library, data: CqiData, current: Library | None = None) -> WhatIf:
    """Replay every distinct DERS check in ``data`` against ``candidate`` (pure: no clock, no I/O); with the
    library in use, also list the changes no replayed check exercised."""
    index = DersIndex.build(candidate)
    checks = [c for c in data.checks if (c.at.source, c.at.seq) not in data.repeats]
    cases = tuple(replay_check(index, c) for c in checks)
    gaps = None if current is None else unexercised(diff_libraries(current, candidate), cases)
    return WhatIf(identity_of(candidate), cases, len(data.infusions), gaps)


_DRUG_PATH: Final = re.compile(r"drugs\[([^\]]+)\](?:\.care_areas\[([^\]/]+)(?:/([^\]]+))?\])?")
_AREA_PATH: Final = re.compile(r"care_areas\[([^\]]+)\]")


def unexercised(changes: Sequence[DiffChange], cases: Sequence[Case]) -> tuple[DiffChange, ...]:
    """The changes to drugs and care areas that no replayed check reached: a change to an entry (or a drug, or a
    care area) counts as exercised only if some logged check used that entry (drug, care area)."""
    entries = {c.check.entry for c in cases}
    drugs = {c.check.drug for c in cases}
    areas = {c.check.area for c in cases}
    missed = []
    for change in changes:
        drug = _DRUG_PATH.match(change.where)
        area = _AREA_PATH.match(change.where)
        if drug is not None:
            drug_id, area_id, therapy = drug.groups()
            hit = drug_id in drugs if area_id is None else (area_id, drug_id, therapy) in entries
        elif area is not None:
            hit = area.group(1) in areas
        else:
            continue  # library name, version, override reasons: not limits a check exercises
        if not hit:
            missed.append(change)
    return tuple(missed)
