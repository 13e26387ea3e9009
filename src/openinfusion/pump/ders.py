"""Dose error reduction: the limit check the pump runs, and its library slot (issue 5, items 4-5).

Theory of operation. When a library is activated, :meth:`DersIndex.build` compiles it once: for each
(care area, drug, therapy) entry it converts every limit into the unit the check compares in, as an
exact ``Fraction`` (integer nL/h for rates, nL for volumes, us for times, the library's own unit for
doses and concentrations) and folds the care area's caps in (its maximum rate and VTBI become hard
upper limits; its weight and BSA limits become limits of the entry). The check itself,
:meth:`DersIndex.check`, then parses nothing: it looks the entry up, converts each entered value by
one exact factor (none when the unit is the library's) and compares; a unit of another dimension is
refused, never guessed (OI-UNIT-1). It is pure and deterministic.

Outcome. :class:`DersResult` lists each limit crossed (:class:`LimitFinding`: field, soft or hard,
lower or upper, entered value and limit in the library's unit) and a :class:`Verdict`: OK, SOFT (may
proceed only with an override and a reason from the library's list) or HARD (blocked, the limit
shown). Beyond a hard limit, only the hard finding is reported. :meth:`DersIndex.authorize` applies
that policy (OI-DERS-3). The caller runs the check again on every titration, bolus and secondary
program (OI-DERS-4); the check is cheap enough for that (``benchmarks/bench_ders.py``).

Library slot (OI-DERS-2, OI-DERS-5, OI-DERS-6, OI-LIB-PKG-1..5). :class:`LibrarySlot` holds the active library,
at most one staged one, the last known good one and the versions accepted so far. :meth:`LibrarySlot.receive`
verifies a package (two signatures from two trusted keys, hash, schema: ``druglib.package``) and admits it
(no replay, no rollback without authorisation, no second content for one version, the pump's care area
present); a refused package leaves the slot unchanged and returns the reason and what was refused to log.
A verified one is staged and becomes active only through :meth:`LibrarySlot.activate` while no infusion
runs. :meth:`LibrarySlot.stored` is what the pump keeps in non-volatile memory; :meth:`LibrarySlot.power_on`
reads it back, falling back to the last known good library when the stored one is refused. Every transition
returns a :class:`LibraryEvent` carrying the library identity (owner, version, hash) to show and log.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from openinfusion.druglib.model import (
    Basis,
    Bounds,
    CareArea,
    Concentration,
    Drug,
    Entry,
    Library,
    LimitField,
    shape_of,
    version_key,
)
from openinfusion.druglib.names import normal
from openinfusion.druglib.package import (
    ByDigest,
    LibraryIdentity,
    PackageFacts,
    VerifiedPackage,
    package_facts,
    verify_package,
)
from openinfusion.errors import IntegrityError, ProgramError
from openinfusion.units import NL_PER_ML, US_PER_S, Duration, FlowRate, Quantity, Unit, Volume, unit

_ML = unit("mL")
_ML_PER_H = unit("mL/h")
_S = unit("s")


class Verdict(Enum):
    """The outcome of a check, in rising severity."""

    OK = 0
    SOFT = 1  # beyond a soft limit: proceeds only with an override and a reason
    HARD = 2  # beyond a hard limit: blocked


class LimitKind(Enum):
    SOFT = "soft"
    HARD = "hard"


class BoundSide(Enum):
    LOWER = "lower"
    UPPER = "upper"


@dataclass(frozen=True, slots=True)
class LimitFinding:
    """One limit crossed: which field, soft or hard, lower or upper, the entered value and the limit.

    ``entered`` and ``limit`` are in the library's unit for the field, so they read side by side.
    """

    field: LimitField
    kind: LimitKind
    bound: BoundSide
    entered: Quantity
    limit: Quantity

    def __str__(self) -> str:
        side = "above" if self.bound is BoundSide.UPPER else "below"
        extreme = "maximum" if self.bound is BoundSide.UPPER else "minimum"
        return f"{self.field.value} {self.entered} is {side} the {self.kind.value} {extreme} {self.limit}"


@dataclass(frozen=True, slots=True)
class DersResult:
    """The structured outcome of one check: the entry checked, every limit crossed, and the verdict."""

    area: str
    drug: str
    therapy: str | None
    findings: tuple[LimitFinding, ...]
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a checked program may proceed, and why (with the override reason when one was used)."""

    proceed: bool
    why: str
    override_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DersRequest:
    """The values of a proposed program that the library limits.

    ``concentration`` names a standard concentration by its key (``"400 mg/250 mL"``);
    ``custom_concentration`` is an amount per volume entered instead. Doses, bolus and loading doses,
    basal rates and PCA limits are quantities in any unit of the right dimension (``ug/kg/min``,
    ``mg``, ...); rates, volumes and times are the pump's integer types. Absent values are not checked.
    """

    area: str
    drug: str
    therapy: str | None = None
    concentration: str | None = None
    custom_concentration: Quantity | None = None
    weight: Quantity | None = None
    bsa: Quantity | None = None
    dose: Quantity | None = None
    rate: FlowRate | None = None
    vtbi: Volume | None = None
    bolus_dose: Quantity | None = None
    bolus_rate: Quantity | None = None
    bolus_duration: Duration | None = None
    loading_dose: Quantity | None = None
    loading_rate: Quantity | None = None
    loading_duration: Duration | None = None
    duration: Duration | None = None
    interval: Duration | None = None
    pca_demand_dose: Quantity | None = None
    pca_lockout: Duration | None = None
    pca_basal_rate: Quantity | None = None
    pca_limit_1h: Quantity | None = None
    pca_limit_4h: Quantity | None = None

    def __post_init__(self) -> None:
        if self.concentration is not None and self.custom_concentration is not None:
            raise ProgramError("program.concentration", "either a standard or a custom concentration, not both")
        for name, _ in _INPUTS:
            value = getattr(self, name)
            if value is not None and _magnitude(value) < 0:
                raise ProgramError(f"program.{name}", "must not be negative")


def _magnitude(value: Quantity | FlowRate | Volume | Duration) -> Fraction | int:
    if isinstance(value, Quantity):
        return value.value
    if isinstance(value, FlowRate):
        return value.nl_per_h
    return value.nl if isinstance(value, Volume) else value.us


_F = LimitField
# request attribute -> the limit it is checked against
_INPUTS: Final = (
    ("weight", _F.WEIGHT),
    ("bsa", _F.BSA),
    ("custom_concentration", _F.CONCENTRATION),
    ("dose", _F.DOSE),
    ("rate", _F.RATE),
    ("vtbi", _F.VTBI),
    ("bolus_dose", _F.BOLUS_DOSE),
    ("bolus_rate", _F.BOLUS_RATE),
    ("bolus_duration", _F.BOLUS_DURATION),
    ("loading_dose", _F.LOADING_DOSE),
    ("loading_rate", _F.LOADING_RATE),
    ("loading_duration", _F.LOADING_DURATION),
    ("duration", _F.DURATION),
    ("interval", _F.INTERVAL),
    ("pca_demand_dose", _F.PCA_DEMAND_DOSE),
    ("pca_lockout", _F.PCA_LOCKOUT),
    ("pca_basal_rate", _F.PCA_BASAL_RATE),
    ("pca_limit_1h", _F.PCA_LIMIT_1H),
    ("pca_limit_4h", _F.PCA_LIMIT_4H),
)
# fields entered as the pump's integer types: (the integer's type, the unit it counts in, integers per unit)
_INTEGER_FIELDS: Final[dict[LimitField, tuple[type, Unit, int]]] = {
    _F.RATE: (FlowRate, _ML_PER_H, NL_PER_ML),
    _F.VTBI: (Volume, _ML, NL_PER_ML),
    _F.BOLUS_DURATION: (Duration, _S, US_PER_S),
    _F.LOADING_DURATION: (Duration, _S, US_PER_S),
    _F.DURATION: (Duration, _S, US_PER_S),
    _F.INTERVAL: (Duration, _S, US_PER_S),
    _F.PCA_LOCKOUT: (Duration, _S, US_PER_S),
}


def _as_quantity(value: Quantity | FlowRate | Volume | Duration) -> Quantity:
    if isinstance(value, Quantity):
        return value
    if isinstance(value, Duration):
        return Quantity(value.seconds, _S)
    return value.quantity()


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    """One field's limits as exact numbers in the check's unit: ``base`` scaled by ``scale``.

    For an integer field ``base``/``scale`` are e.g. mL/h and 10**6 (so the numbers are nL/h); for a
    quantity field ``base`` is the library's unit and ``scale`` is 1. ``display`` is the library's unit.
    """

    field: LimitField
    display: Unit
    base: Unit
    scale: int
    native: type | None  # the pump type whose integer is already in check units (FlowRate for rate), if any
    soft_min: Fraction | None
    soft_max: Fraction | None
    hard_min: Fraction | None
    hard_max: Fraction | None

    @classmethod
    def of(cls, field: LimitField, bounds: Bounds | None, cap: Quantity | None = None) -> CompiledLimit:
        """Compile ``bounds`` (may be None when only ``cap``, a care-area hard maximum, applies)."""
        display = bounds.unit if bounds is not None else (cap.unit if cap is not None else _ML_PER_H)
        native, base, scale = _INTEGER_FIELDS.get(field, (None, display, 1))

        def number(q: Quantity | None) -> Fraction | None:
            return None if q is None else q.to(base).value * scale

        hard_max = number(bounds.hard_max if bounds else None)
        capped = number(cap)
        if capped is not None and (hard_max is None or capped < hard_max):
            hard_max = capped
        return cls(
            field,
            display,
            base,
            scale,
            native,
            number(bounds.soft_min if bounds else None),
            number(bounds.soft_max if bounds else None),
            number(bounds.hard_min if bounds else None),
            hard_max,
        )

    def check(self, value: Quantity | FlowRate | Volume | Duration, name: str) -> LimitFinding | None:
        """The limit ``value`` crosses (hard before soft), or None."""
        v: Fraction | int
        if self.native is not None and isinstance(value, self.native):
            v = _magnitude(value)  # nL/h, nL or us: the check's own numbers
        else:
            u = (q := _as_quantity(value)).unit
            if u.code == self.base.code and u.dim == self.base.dim:
                v = q.value
            elif u.dim == self.base.dim:
                v = q.value * u.factor / self.base.factor
            else:
                raise ProgramError(
                    f"program.{name}", f"{u.code!r} cannot be checked against the library's {self.display.code!r}"
                )
            if self.scale != 1:
                v *= self.scale
        if self.hard_max is not None and v > self.hard_max:
            return self._finding(LimitKind.HARD, BoundSide.UPPER, v, self.hard_max)
        if self.hard_min is not None and v < self.hard_min:
            return self._finding(LimitKind.HARD, BoundSide.LOWER, v, self.hard_min)
        if self.soft_max is not None and v > self.soft_max:
            return self._finding(LimitKind.SOFT, BoundSide.UPPER, v, self.soft_max)
        if self.soft_min is not None and v < self.soft_min:
            return self._finding(LimitKind.SOFT, BoundSide.LOWER, v, self.soft_min)
        return None

    def _finding(self, kind: LimitKind, bound: BoundSide, v: Fraction | int, limit: Fraction) -> LimitFinding:
        def shown(x: Fraction | int) -> Quantity:
            in_base = Quantity(Fraction(x, self.scale), self.base)
            return in_base if self.base is self.display else in_base.to(self.display)

        return LimitFinding(self.field, kind, bound, shown(v), shown(limit))


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """One (care area, drug, therapy) entry, ready to check."""

    area: str
    drug: str
    therapy: str | None
    display_name: str
    high_alert: bool
    advisory: str | None
    concentrations: Mapping[str, Concentration]  # the standard concentrations, by key
    custom_concentration: bool
    needs_concentration: bool
    needs_weight: bool
    needs_bsa: bool
    limits: Mapping[LimitField, CompiledLimit]
    checks: tuple[tuple[str, CompiledLimit], ...]  # (request attribute, its limit), in the order of _INPUTS

    @classmethod
    def of(cls, drug: Drug, entry: Entry, area: CareArea) -> CompiledEntry:
        limits = {f: CompiledLimit.of(f, b) for f, b in entry.limits}
        limits[_F.RATE] = CompiledLimit.of(_F.RATE, entry.limit(_F.RATE), area.max_rate)
        if area.max_vtbi is not None or entry.limit(_F.VTBI) is not None:
            limits[_F.VTBI] = CompiledLimit.of(_F.VTBI, entry.limit(_F.VTBI), area.max_vtbi)
        if area.weight is not None:
            limits[_F.WEIGHT] = CompiledLimit.of(_F.WEIGHT, area.weight)
        if area.bsa is not None:
            limits[_F.BSA] = CompiledLimit.of(_F.BSA, area.bsa)
        shapes = [shape_of(entry.dose_unit), *(shape_of(b.unit) for _, b in entry.limits)]
        bases = {s.basis for s in shapes if s is not None}
        return cls(
            area=area.id,
            drug=drug.id,
            therapy=entry.therapy,
            display_name=drug.display_name,
            high_alert=drug.high_alert,
            advisory=entry.advisory or drug.advisory,
            concentrations=MappingProxyType({c.key: c for c in entry.concentrations}),
            custom_concentration=entry.custom_concentration,
            needs_concentration=not entry.rate_only,
            needs_weight=Basis.WEIGHT in bases,
            needs_bsa=Basis.BSA in bases,
            limits=MappingProxyType(limits),
            checks=tuple((name, limits[f]) for name, f in _INPUTS if f in limits),
        )

    def check_selection(self, request: DersRequest) -> None:
        """Refuse a request that does not fit the entry: concentration, weight or BSA missing or unknown."""
        where = f"{self.display_name} in {self.area}"
        if request.concentration is not None and request.concentration not in self.concentrations:
            known = ", ".join(sorted(self.concentrations)) or "none"
            raise ProgramError("program.concentration", f"not a standard concentration of {where} ({known})")
        if request.custom_concentration is not None and not self.custom_concentration:
            raise ProgramError("program.custom_concentration", f"custom concentrations are not allowed for {where}")
        if self.needs_concentration and request.concentration is None and request.custom_concentration is None:
            raise ProgramError("program.concentration", f"choose a concentration of {where}")
        if self.needs_weight and request.weight is None:
            raise ProgramError("program.weight", f"dosing of {where} is per kg: the patient's weight is needed")
        if self.needs_bsa and request.bsa is None:
            raise ProgramError("program.bsa", f"dosing of {where} is per m2: the patient's BSA is needed")


@dataclass(frozen=True, slots=True)
class DersIndex:
    """A library compiled for the check: entries by (care area, drug, therapy), and override reasons."""

    entries: Mapping[tuple[str, str, str | None], CompiledEntry]
    override_reasons: tuple[str, ...]
    basic_areas: frozenset[str] = frozenset()  # care areas that allow basic (no-library) infusions
    care_areas: Mapping[str, CareArea] = field(default_factory=dict)  # each area's pump settings

    @classmethod
    def build(cls, library: Library) -> DersIndex:
        areas = {a.id: a for a in library.care_areas}
        entries = {(e.area, d.id, e.therapy): CompiledEntry.of(d, e, areas[e.area]) for d, e in library.entries()}
        basic = frozenset(a.id for a in library.care_areas if a.basic_infusion)
        return cls(MappingProxyType(entries), library.override_reasons, basic, MappingProxyType(areas))

    def entry(self, area: str, drug: str, therapy: str | None = None) -> CompiledEntry:
        found = self.entries.get((area, drug, therapy))
        if found is None:
            label = drug if therapy is None else f"{drug} ({therapy})"
            raise ProgramError("program.drug", f"{label} has no entry in care area {area!r} of the active library")
        return found

    def check(self, request: DersRequest) -> DersResult:
        """Check every value of ``request`` against its entry's limits (pure; no unit parsing)."""
        entry = self.entry(request.area, request.drug, request.therapy)
        entry.check_selection(request)
        findings = []
        for name, limit in entry.checks:  # only the fields this entry limits
            value = getattr(request, name)
            if value is not None:
                finding = limit.check(value, name)
                if finding is not None:
                    findings.append(finding)
        verdict = Verdict.OK
        for f in findings:
            if f.kind is LimitKind.HARD:
                verdict = Verdict.HARD
                break
            verdict = Verdict.SOFT
        return DersResult(entry.area, entry.drug, entry.therapy, tuple(findings), verdict)

    def authorize(self, result: DersResult, override_reason: str | None = None) -> Decision:
        """Apply the policy: OK proceeds; SOFT needs a listed override reason; HARD never proceeds."""
        crossed = "; ".join(str(f) for f in result.findings)
        if result.verdict is Verdict.HARD:
            return Decision(False, f"blocked by a hard limit: {crossed}")
        if result.verdict is Verdict.OK:
            return Decision(True, "within limits")
        if override_reason is None:
            return Decision(False, f"soft limit crossed, override with a reason needed: {crossed}")
        if override_reason not in self.override_reasons:
            return Decision(False, f"override reason {override_reason!r} is not in the library's list")
        return Decision(True, f"soft limit overridden: {crossed}", override_reason)


# --- the library slot: verify, admit, stage, activate, store ----------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedLibrary:
    """A verified library in the pump: its identity, compiled index, the library and the package it came in."""

    identity: LibraryIdentity
    index: DersIndex
    library: Library
    package: bytes
    key_ids: tuple[str, ...] = ()


class LibraryEventKind(Enum):
    """What happened to a library (named as the event log's kinds)."""

    REJECTED = "library_rejected"
    STAGED = "library_staged"
    ACTIVATED = "library_activated"
    LOADED = "library_loaded"  # the stored library, verified again at power-on
    FALLBACK = "library_fallback"  # the last known good library, because the stored one was refused


@dataclass(frozen=True, slots=True)
class LibraryEvent:
    """A library transition to show and log: what, which library (None if refused), why, and for a refusal
    what the package claimed to be (version, hash, key ids; OI-LIB-PKG-5)."""

    kind: LibraryEventKind
    identity: LibraryIdentity | None
    reason: str
    refused: PackageFacts | None = None


@dataclass(frozen=True, slots=True)
class AcceptedVersion:
    """A version the pump accepted for one library (owner and name, normalised), bound to its content hash."""

    library: str
    version: str
    hash: str


@dataclass(frozen=True, slots=True)
class StoredLibraries:
    """What the pump keeps in non-volatile memory: the active package, the last known good one (the library
    active before it), and every version accepted (the rollback guard). The driver persists
    :meth:`LibrarySlot.stored` and gives it back at power-on."""

    active: bytes | None = None
    last_good: bytes | None = None
    accepted: tuple[AcceptedVersion, ...] = ()


def _library_key(identity: LibraryIdentity) -> str:
    return f"{normal(identity.owner)}/{normal(identity.name)}"


def _accepted(identity: LibraryIdentity) -> AcceptedVersion:
    return AcceptedVersion(_library_key(identity), identity.version, identity.hash)


@dataclass(frozen=True, slots=True)
class LibrarySlot:
    """The pump's libraries: the active one (used by every check), at most one staged to replace it, the last
    known good one, the versions accepted so far, and the care area the pump is set to.

    Admission rules of :meth:`receive`, after the package verifies (two signatures, two trusted keys; the
    approver's diff when the pump holds the base): the active package again is a replay and changes nothing
    (OI-LIB-PKG-1); a version accepted before with another content hash is refused (OI-LIB-PKG-1); a version
    older than the newest accepted needs a rollback authorisation naming that newest version (OI-LIB-PKG-2);
    a library without the pump's care area is refused before staging (OI-LIB-PKG-3). Every refusal leaves the
    slot unchanged and says what was refused (OI-LIB-PKG-5).
    """

    active: LoadedLibrary | None = None
    staged: LoadedLibrary | None = None
    last_good: LoadedLibrary | None = None
    accepted: tuple[AcceptedVersion, ...] = ()
    care_area: str | None = None

    def receive(self, package: bytes, trusted_keys: Sequence[Ed25519PublicKey]) -> tuple[LibrarySlot, LibraryEvent]:
        """Verify and admit ``package``; stage it if both pass, else keep everything as it is and say why
        (OI-DERS-2)."""
        try:
            verified = verify_package(package, trusted_keys, None if self.active is None else self.active.library)
        except IntegrityError as e:
            return self, LibraryEvent(LibraryEventKind.REJECTED, None, str(e), package_facts(package))
        problem = self._admission(verified)
        if problem is not None:
            return self, LibraryEvent(LibraryEventKind.REJECTED, None, f"package refused: {problem}", _facts(verified))
        loaded = self._loaded(verified, package)
        record = _accepted(verified.identity)
        accepted = self.accepted if record in self.accepted else (*self.accepted, record)
        why = f"verified (author {verified.author.signer}, approver {verified.approver.signer})"
        if verified.rollback_from is not None:
            why = f"rollback from version {verified.rollback_from} authorised; " + why
        event = LibraryEvent(
            LibraryEventKind.STAGED, verified.identity, f"{why}; activates when no infusion is running"
        )
        return replace(self, staged=loaded, accepted=accepted), event

    def activate(self, infusing: bool) -> tuple[LibrarySlot, LibraryEvent | None]:
        """Make the staged library active if there is one and no infusion is running on the pump (OI-DERS-6);
        the library it replaces becomes the last known good one."""
        if self.staged is None or infusing:
            return self, None
        event = LibraryEvent(LibraryEventKind.ACTIVATED, self.staged.identity, "no infusion running")
        last_good = self.active if self.active is not None else self.last_good
        return replace(self, active=self.staged, staged=None, last_good=last_good), event

    def stored(self) -> StoredLibraries:
        """What to keep in non-volatile memory (a staged library is kept only once active)."""
        return StoredLibraries(
            None if self.active is None else self.active.package,
            None if self.last_good is None else self.last_good.package,
            self.accepted,
        )

    @classmethod
    def power_on(
        cls, stored: StoredLibraries, trusted_keys: Sequence[Ed25519PublicKey], care_area: str | None
    ) -> tuple[LibrarySlot, tuple[LibraryEvent, ...]]:
        """The slot from non-volatile memory: the stored active library verified again, else the last known
        good one (a FALLBACK event, which the pump raises as an alarm; OI-LIB-PKG-4), else none."""
        slot = cls(accepted=stored.accepted, care_area=care_area)
        events: list[LibraryEvent] = []
        loaded: list[LoadedLibrary | None] = []
        for package in (stored.active, stored.last_good):
            library, event = slot._reload(package, trusted_keys)
            loaded.append(library)
            if event is not None:
                events.append(event)
        active, last_good = loaded
        for held in (last_good, active):  # a stored library counts as accepted (the rollback guard)
            record = None if held is None else _accepted(held.identity)
            if record is not None and record not in slot.accepted:
                slot = replace(slot, accepted=(*slot.accepted, record))
        if active is not None:
            events.append(LibraryEvent(LibraryEventKind.LOADED, active.identity, "stored library verified"))
            return replace(slot, active=active, last_good=last_good), tuple(events)
        if last_good is not None:
            why = "the stored library was refused: the last known good library is active"
            events.append(LibraryEvent(LibraryEventKind.FALLBACK, last_good.identity, why))
            return replace(slot, active=last_good), tuple(events)
        return slot, tuple(events)

    def _reload(
        self, package: bytes | None, trusted_keys: Sequence[Ed25519PublicKey]
    ) -> tuple[LoadedLibrary | None, LibraryEvent | None]:
        """A stored package verified again: it was admitted before, so only its integrity, its recorded
        version-hash binding and the care area are checked (a last known good one is older by design)."""
        if package is None:
            return None, None
        try:
            verified = verify_package(package, trusted_keys)
        except IntegrityError as e:
            return None, LibraryEvent(LibraryEventKind.REJECTED, None, f"stored {e}", package_facts(package))
        problem = self._bound_elsewhere(verified) or self._missing_area(verified)
        if problem is not None:
            return None, LibraryEvent(
                LibraryEventKind.REJECTED, None, f"stored package refused: {problem}", _facts(verified)
            )
        return self._loaded(verified, package), None

    def _admission(self, verified: VerifiedPackage) -> str | None:
        identity = verified.identity
        for held, what in ((self.active, "the active library"), (self.staged, "staged already")):
            if held is not None and held.identity == identity:
                return f"version {identity.version} is {what} (a replay): nothing changed"
        problem = self._bound_elsewhere(verified)
        if problem is not None:
            return problem
        mine = [a.version for a in self.accepted if a.library == _library_key(identity)]
        newest = max(mine, key=version_key, default=None)
        if verified.rollback_from is not None and newest is not None and verified.rollback_from != newest:
            return (
                f"its rollback authorisation is from version {verified.rollback_from}, "
                f"but the newest version accepted is {newest}"
            )
        if (
            verified.rollback_from is None
            and newest is not None
            and version_key(identity.version) < version_key(newest)
        ):
            return (
                f"version {identity.version} is older than version {newest} accepted before "
                "(a rollback needs a signed rollback authorisation)"
            )
        return self._missing_area(verified)

    def _bound_elsewhere(self, verified: VerifiedPackage) -> str | None:
        identity = verified.identity
        for a in self.accepted:
            if a.library == _library_key(identity) and a.version == identity.version and a.hash != identity.hash:
                return (
                    f"version {identity.version} was accepted before with content sha256 {a.hash[:12]}: "
                    "same version, different content"
                )
        return None

    def _missing_area(self, verified: VerifiedPackage) -> str | None:
        areas = {a.id for a in verified.library.care_areas}
        if self.care_area is not None and self.care_area not in areas:
            return f"it has no care area {self.care_area!r}, the pump's unit: the unit could not infuse from it"
        return None

    @staticmethod
    def _loaded(verified: VerifiedPackage, package: bytes) -> LoadedLibrary:
        index = _compiled(ByDigest(verified.identity.hash, verified.library))
        return LoadedLibrary(verified.identity, index, verified.library, package, verified.key_ids)


@functools.lru_cache(maxsize=8)
def _compiled(library: ByDigest[Library]) -> DersIndex:
    """The DERS index of a verified library, memoised by its content hash (a pure function of it; the index is
    immutable): a pump booted again on a library compiled before in this process reuses it (decision record 0039)."""
    return DersIndex.build(library.value)


def _facts(verified: VerifiedPackage) -> PackageFacts:
    return PackageFacts(verified.identity.version, verified.identity.hash, verified.key_ids)
