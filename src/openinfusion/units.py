"""Units and exact quantities.

Two layers:

* :class:`Quantity` is a value (an exact :class:`~fractions.Fraction`) with a :class:`Unit`, for
  doses, concentrations and limits. Units are parsed from UCUM codes, strictly, over a closed set
  of atoms (below). Conversions are exact rational factors; nothing is ever rounded here.
* :class:`Volume`, :class:`FlowRate`, :class:`Duration` and :class:`Instant` are the integer
  types of the pump core's hot path: nanolitres, nanolitres per hour and microseconds. Their
  arithmetic is integer with the rounding direction stated on each method, so totals never drift.

Closed set of atoms (UCUM case-sensitive codes)::

    volume       L  mL
    drug mass    g  mg  ug  ng          ("mcg" is accepted as an alias of "ug"; ISMP's
                                         abbreviation, see docs/decisions/0002-units.md)
    activity     [iU]  m[iU]            ("[IU]" is UCUM's synonym of "[iU]")
    equivalents  meq
    substance    mmol
    body mass    kg                     (the patient's weight; never a drug mass)
    body surface m2                     (the patient's BSA)
    time         s  min  h

Anything else (``mL/hr``, ``cc``, ``U``, ``units``, ``mEq``, ``lb``, ``µg``) is an error naming the
atom, with a hint where the mistake is a known one. ``kg`` is deliberately its own dimension: a
dose in ``ug/kg/min`` stays "per kg of patient", and a drug mass can never be converted to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Final

from openinfusion.errors import UnitError

# Dimension exponents, in this order.
DIMENSIONS: Final = ("volume", "drug_mass", "activity", "equivalents", "substance", "body_mass", "body_surface", "time")
Dim = tuple[int, int, int, int, int, int, int, int]


def _dim(**exps: int) -> Dim:
    values = [exps.get(name, 0) for name in DIMENSIONS]
    return (values[0], values[1], values[2], values[3], values[4], values[5], values[6], values[7])


# atom -> (dimension, factor to the coherent base of that dimension: L, g, [iU], eq, mol, kg, m2, s)
_ATOMS: Final[dict[str, tuple[Dim, Fraction]]] = {
    "L": (_dim(volume=1), Fraction(1)),
    "mL": (_dim(volume=1), Fraction(1, 1000)),
    "g": (_dim(drug_mass=1), Fraction(1)),
    "mg": (_dim(drug_mass=1), Fraction(1, 1000)),
    "ug": (_dim(drug_mass=1), Fraction(1, 1_000_000)),
    "ng": (_dim(drug_mass=1), Fraction(1, 1_000_000_000)),
    "[iU]": (_dim(activity=1), Fraction(1)),
    "m[iU]": (_dim(activity=1), Fraction(1, 1000)),
    "meq": (_dim(equivalents=1), Fraction(1, 1000)),
    "mmol": (_dim(substance=1), Fraction(1, 1000)),
    "kg": (_dim(body_mass=1), Fraction(1)),
    "m2": (_dim(body_surface=1), Fraction(1)),
    "s": (_dim(time=1), Fraction(1)),
    "min": (_dim(time=1), Fraction(60)),
    "h": (_dim(time=1), Fraction(3600)),
}
_ALIASES: Final[dict[str, str]] = {"mcg": "ug", "[IU]": "[iU]", "m[IU]": "m[iU]"}
_HINTS: Final[dict[str, str]] = {
    "hr": "use 'h' (UCUM) for hours",
    "hour": "use 'h' (UCUM) for hours",
    "ml": "UCUM is case-sensitive: use 'mL'",
    "l": "UCUM is case-sensitive: use 'L'",
    "cc": "use 'mL'",
    "U": "'U' is banned (ISMP) and ambiguous: use '[iU]' for international units",
    "u": "'u' is banned (ISMP) and ambiguous: use '[iU]' for international units",
    "units": "use '[iU]' for international units",
    "IU": "use '[iU]' (UCUM) for international units",
    "mEq": "UCUM is case-sensitive: use 'meq'",
    "mM": "use 'mmol'",
    "µg": "use 'ug' (or 'mcg'); the micro sign is not accepted",
    "μg": "use 'ug' (or 'mcg'); the micro sign is not accepted",
    "lb": "weights are entered in kg only; convert pounds explicitly",
    "[lb_av]": "weights are entered in kg only; convert pounds explicitly",
    "sec": "use 's' for seconds",
    "m^2": "use 'm2' for body surface area",
}

_TOKEN = re.compile(r"\(|\)|/|\.|[^()/.\s]+")


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit: its normalised UCUM ``code``, dimension exponents and exact factor to base."""

    code: str
    dim: Dim
    factor: Fraction

    def __str__(self) -> str:
        return self.code

    def same_dimension(self, other: Unit) -> bool:
        """True if quantities in ``self`` and ``other`` can be converted into one another."""
        return self.dim == other.dim

    def per(self, other: Unit) -> Unit:
        """The quotient unit ``self/other`` (code ``a/b``, parenthesised where needed)."""
        right = f"({other.code.replace('/', '.')})" if "/" in other.code else other.code
        return Unit(f"{self.code}/{right}", _sub(self.dim, other.dim), self.factor / other.factor)

    def times(self, other: Unit) -> Unit:
        """The product unit ``self.other``."""
        return Unit(f"{self.code}.{other.code}", _add(self.dim, other.dim), self.factor * other.factor)

    @property
    def is_dimensionless(self) -> bool:
        return not any(self.dim)


def _add(a: Dim, b: Dim) -> Dim:
    s = [x + y for x, y in zip(a, b, strict=True)]
    return (s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])


def _sub(a: Dim, b: Dim) -> Dim:
    return _add(a, (-b[0], -b[1], -b[2], -b[3], -b[4], -b[5], -b[6], -b[7]))


def _atom(token: str, code: str, where: str) -> tuple[str, Dim, Fraction]:
    name = _ALIASES.get(token, token)
    if name in _ATOMS:
        dim, factor = _ATOMS[name]
        return name, dim, factor
    hint = _HINTS.get(token)
    detail = f"; {hint}" if hint else f"; known units: {', '.join(_ATOMS)}"
    raise UnitError(where, f"unknown unit {token!r} in {code!r}{detail}")


def parse_unit(code: str, where: str = "unit") -> Unit:
    """Parse a UCUM code over the closed atom set, strictly.

    Grammar: ``term (('/' | '.') term)*`` where a term is an atom or ``'(' atom ('.' atom)* ')'``;
    ``/`` and ``.`` associate left (UCUM: ``ug/kg/min`` is ``(ug/kg)/min``). Aliases are normalised
    (``mcg`` -> ``ug``). Raises :class:`UnitError` naming ``where`` and the offending atom.
    """
    if not isinstance(code, str) or not code.strip():
        raise UnitError(where, "unit is empty")
    if code != code.strip() or " " in code:
        raise UnitError(where, f"unit {code!r} contains spaces")
    tokens = _TOKEN.findall(code)
    pos = 0
    parts: list[str] = []
    dim = _dim()
    factor = Fraction(1)

    def term() -> tuple[str, Dim, Fraction]:
        nonlocal pos
        if pos >= len(tokens):
            raise UnitError(where, f"unit {code!r} ends where a unit was expected")
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            name, d, f = term_atom()
            names = [name]
            while pos < len(tokens) and tokens[pos] == ".":
                pos += 1
                n2, d2, f2 = term_atom()
                names.append(n2)
                d, f = _add(d, d2), f * f2
            if pos >= len(tokens) or tokens[pos] != ")":
                raise UnitError(where, f"unbalanced parenthesis in {code!r}")
            pos += 1
            return "(" + ".".join(names) + ")", d, f
        if tok in {")", "/", "."}:
            raise UnitError(where, f"unexpected {tok!r} in {code!r}")
        return _atom(tok, code, where)

    def term_atom() -> tuple[str, Dim, Fraction]:
        nonlocal pos
        if pos >= len(tokens) or tokens[pos] in {"(", ")", "/", "."}:
            raise UnitError(where, f"malformed unit {code!r}")
        pos += 1
        return _atom(tokens[pos - 1], code, where)

    name, dim, factor = term()
    parts.append(name)
    while pos < len(tokens):
        op = tokens[pos]
        pos += 1
        if op not in {"/", "."}:
            raise UnitError(where, f"unexpected {op!r} in {code!r}")
        name, d, f = term()
        parts.append(op + name)
        if op == "/":
            dim, factor = _sub(dim, d), factor / f
        else:
            dim, factor = _add(dim, d), factor * f
    return Unit("".join(parts), dim, factor)


def unit(code: str) -> Unit:
    """Shorthand for :func:`parse_unit` on a code written in source (a bad code is a bug)."""
    return parse_unit(code, "unit")


Number = int | str | Decimal | Fraction


def exact(value: Number | float, where: str = "value") -> Fraction:
    """Convert a number to an exact Fraction.

    Strings and Decimals are read as written (``"0.1"`` is exactly 1/10). A float is read through
    its shortest round-trip decimal (``0.1`` -> 1/10), the value a person typed into a file.
    Booleans, NaN and infinities are refused.
    """
    if isinstance(value, bool):
        raise UnitError(where, f"expected a number, got {value!r}")
    try:
        if isinstance(value, float):
            value = Decimal(repr(value))
        elif isinstance(value, str):
            if len(value) > MAX_NUMBER_CHARS:
                raise UnitError(where, f"a number of {len(value)} characters: at most {MAX_NUMBER_CHARS}")
            value = Decimal(value.strip())
        if isinstance(value, Decimal):
            _check_bounded(value, where)
        return Fraction(value)
    except (ValueError, ArithmeticError, TypeError):
        raise UnitError(where, f"not a finite number: {str(value)[:40]!r}") from None


MAX_NUMBER_CHARS: Final = 64
MAX_DIGITS: Final = 20
MAX_EXPONENT: Final = 15


def _check_bounded(value: Decimal, where: str) -> None:
    """Refuse a decimal that cannot be a dose, volume, rate or time, before it is made exact: at most
    ``MAX_DIGITS`` significant digits and a magnitude within 1e-15..1e15 (``1e999999999`` would otherwise
    take the exact conversion hours and memory; OI-LIB-IN-1)."""
    if not value.is_finite():
        raise UnitError(where, f"not a finite number: {value}")
    if value.is_zero():
        return
    if not -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        bound = f"1e-{MAX_EXPONENT} and 1e{MAX_EXPONENT}"
        raise UnitError(where, f"{str(value)[:24]} is out of range: a quantity's magnitude lies within {bound}")
    digits = "".join(map(str, value.as_tuple().digits)).strip("0")
    if len(digits) > MAX_DIGITS:
        raise UnitError(where, f"{len(digits)} significant digits: at most {MAX_DIGITS}")


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact value with a unit. Arithmetic keeps exactness; ``+``/``-`` need equal dimensions."""

    value: Fraction
    unit: Unit

    @classmethod
    def of(cls, value: Number | float, code: str | Unit, where: str = "quantity") -> Quantity:
        """Build from a number and a unit code (or :class:`Unit`)."""
        u = code if isinstance(code, Unit) else parse_unit(code, f"{where}.unit")
        return cls(exact(value, where), u)

    @classmethod
    def parse(cls, text: str, where: str = "quantity") -> Quantity:
        """Parse ``"<number> <ucum>"``, e.g. ``"400 mg"`` or ``"0.5 ug/kg/min"``."""
        parts = text.strip().split()
        if len(parts) != 2:
            raise UnitError(where, f"expected '<number> <unit>', got {text!r}")
        return cls.of(parts[0], parts[1], where)

    def to(self, target: Unit | str, where: str = "quantity") -> Quantity:
        """Convert exactly to ``target``; raises :class:`UnitError` if dimensions differ."""
        u = target if isinstance(target, Unit) else parse_unit(target, f"{where}.unit")
        if u.dim != self.unit.dim:
            raise UnitError(where, f"cannot convert {self.unit.code!r} to {u.code!r}")
        return Quantity(self.value * self.unit.factor / u.factor, u)

    def in_(self, target: Unit | str) -> Fraction:
        """The value expressed in ``target`` (exact)."""
        return self.to(target).value

    def _same(self, other: Quantity) -> Fraction:
        if other.unit.dim != self.unit.dim:
            raise UnitError("quantity", f"cannot combine {self.unit.code!r} with {other.unit.code!r}")
        return other.value * other.unit.factor / self.unit.factor

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + self._same(other), self.unit)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - self._same(other), self.unit)

    def __mul__(self, other: Quantity | int | Fraction) -> Quantity:
        if isinstance(other, Quantity):
            return Quantity(self.value * other.value, self.unit.times(other.unit))
        return Quantity(self.value * other, self.unit)

    def __truediv__(self, other: Quantity | int | Fraction) -> Quantity:
        if isinstance(other, Quantity):
            if other.value == 0:
                raise UnitError("quantity", "division by zero")
            return Quantity(self.value / other.value, self.unit.per(other.unit))
        return Quantity(self.value / other, self.unit)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < self._same(other)

    def __le__(self, other: Quantity) -> bool:
        return self.value <= self._same(other)

    def __gt__(self, other: Quantity) -> bool:
        return self.value > self._same(other)

    def __ge__(self, other: Quantity) -> bool:
        return self.value >= self._same(other)

    def equals(self, other: Quantity) -> bool:
        """Value equality across units of one dimension (``1 mg`` equals ``1000 ug``)."""
        return other.unit.dim == self.unit.dim and self.value == self._same(other)

    def __str__(self) -> str:
        return f"{format_decimal(self.value)} {self.unit.code}"


def format_decimal(value: Fraction, places: int = 6) -> str:
    """A Fraction as a plain decimal, at most ``places`` decimals, trailing zeros removed."""
    with localcontext(prec=100):  # exact enough for any bounded quantity (no InvalidOperation on 1e15 ng)
        q = Decimal(value.numerator) / Decimal(value.denominator)
        text = f"{q.quantize(Decimal(1).scaleb(-places)):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- integer hot-path types -------------------------------------------------------------------

NL_PER_ML: Final = 1_000_000
US_PER_S: Final = 1_000_000
US_PER_H: Final = 3_600 * US_PER_S

ML = unit("mL")
ML_PER_H = unit("mL/h")


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A span of time in integer microseconds (may be negative only as a difference)."""

    us: int

    @classmethod
    def s(cls, seconds: Number | float) -> Duration:
        """From seconds, rounded to the nearest microsecond."""
        return cls(round(exact(seconds) * US_PER_S))

    @classmethod
    def min(cls, minutes: Number | float) -> Duration:
        return cls(round(exact(minutes) * 60 * US_PER_S))

    @classmethod
    def h(cls, hours: Number | float) -> Duration:
        return cls(round(exact(hours) * US_PER_H))

    @classmethod
    def of(cls, q: Quantity) -> Duration:
        """From a time :class:`Quantity`, rounded to the nearest microsecond."""
        return cls(round(q.in_(_S) * US_PER_S))

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.us, US_PER_S)

    def __add__(self, other: Duration) -> Duration:
        return Duration(self.us + other.us)

    def __sub__(self, other: Duration) -> Duration:
        return Duration(self.us - other.us)

    def __mul__(self, k: int) -> Duration:
        return Duration(self.us * k)

    def __str__(self) -> str:
        return f"{format_decimal(self.seconds, 3)} s"


_S = unit("s")
ZERO_DURATION: Final = Duration(0)


@dataclass(frozen=True, slots=True, order=True)
class Instant:
    """A point on the pump's monotonic clock: integer microseconds since power-on."""

    us: int

    def __add__(self, d: Duration) -> Instant:
        return Instant(self.us + d.us)

    def since(self, earlier: Instant) -> Duration:
        """``self - earlier`` as a :class:`Duration`."""
        return Duration(self.us - earlier.us)

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.us, US_PER_S)

    def __str__(self) -> str:
        return f"t={format_decimal(self.seconds, 3)} s"


@dataclass(frozen=True, slots=True, order=True)
class Volume:
    """A volume in integer nanolitres. Never negative when it is a delivered or remaining volume."""

    nl: int

    @classmethod
    def ml(cls, millilitres: Number | float) -> Volume:
        """From millilitres, rounded to the nearest nanolitre (half to even)."""
        return cls(round(exact(millilitres) * NL_PER_ML))

    @classmethod
    def of(cls, q: Quantity) -> Volume:
        """From a volume :class:`Quantity`, rounded to the nearest nanolitre."""
        return cls(round(q.in_(ML) * NL_PER_ML))

    @property
    def in_ml(self) -> Fraction:
        return Fraction(self.nl, NL_PER_ML)

    def quantity(self) -> Quantity:
        return Quantity(self.in_ml, ML)

    def __add__(self, other: Volume) -> Volume:
        return Volume(self.nl + other.nl)

    def __sub__(self, other: Volume) -> Volume:
        return Volume(self.nl - other.nl)

    def __str__(self) -> str:
        return f"{format_decimal(self.in_ml, 3)} mL"


ZERO_VOLUME: Final = Volume(0)


@dataclass(frozen=True, slots=True, order=True)
class FlowRate:
    """A flow rate in integer nanolitres per hour (0.01 mL/h = 10,000 nL/h)."""

    nl_per_h: int

    @classmethod
    def ml_h(cls, ml_per_h: Number | float) -> FlowRate:
        """From mL/h, rounded to the nearest nL/h."""
        return cls(round(exact(ml_per_h) * NL_PER_ML))

    @classmethod
    def of(cls, q: Quantity) -> FlowRate:
        """From a volume/time :class:`Quantity`, rounded to the nearest nL/h."""
        return cls(round(q.in_(ML_PER_H) * NL_PER_ML))

    @property
    def in_ml_h(self) -> Fraction:
        return Fraction(self.nl_per_h, NL_PER_ML)

    def quantity(self) -> Quantity:
        return Quantity(self.in_ml_h, ML_PER_H)

    def volume_in(self, d: Duration) -> Volume:
        """Volume delivered at this rate over ``d``, rounded down to the nanolitre."""
        return Volume(self.nl_per_h * d.us // US_PER_H)

    def time_for(self, v: Volume) -> Duration:
        """Time to deliver ``v`` at this rate, rounded up to the microsecond. Rate must be > 0."""
        return Duration(-(-v.nl * US_PER_H // self.nl_per_h))

    def __str__(self) -> str:
        return f"{format_decimal(self.in_ml_h, 3)} mL/h"


ZERO_RATE: Final = FlowRate(0)
