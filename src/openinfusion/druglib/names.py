"""Names a pharmacist and a pump cannot confuse (issue 8, item 1; OI-LIB-NAME-1..3).

Theory of operation. A name is compared in three forms:

* :func:`normal`: Unicode NFKC, case-folded, whitespace collapsed. Two names equal in this form are the
  same name (``Renal`` and ``renal ``, ``Adult ICU`` and ``adult  icu``);
* :func:`looks`: the UTS #39 skeletons (Unicode Security Mechanisms, section 4) of the normal form and of
  the name as written: NFD, every code point replaced by its prototype from Unicode's ``confusables.txt``,
  NFD again. Two names sharing a skeleton *look* the same (``dopamine`` with a Latin ``o`` and with a
  Cyrillic ``о``; ``rn`` and ``m``; ``l``, ``I`` and ``1``);
* the raw text, which is what the pump shows (tall-man lettering such as ``DOPamine`` is kept as written).

:func:`name_problems` refuses, in one name: invisible characters (format, control, private-use, unassigned
and default-ignorable code points, such as the zero-width space or a bidirectional override), leading,
trailing or repeated whitespace, compatibility forms (a name must be NFKC as written, case aside), and a
mix of scripts (UTS #39 "highly restrictive": one script, or Latin with Han and Japanese kana, Korean
Hangul or Bopomofo). :class:`Namespace` then refuses two owners whose names share a normal form
(``duplicate``) or a skeleton (``confusable_name``). :func:`visible` writes a name so that two names that
differ in any code point never print alike (for ``library diff`` and the error lines).

The tables are Unicode's own, vendored unmodified in ``druglib/unicode/`` (``confusables.txt`` of UTS #39
version 13.0.0, ``Scripts.txt`` of the UCD 15.0.0; licence and checksums in ``LICENSE-UNICODE.txt``; why
these and how to update them: ``docs/decisions/0013-druglib-confusable-names.md``).
"""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from importlib import resources
from typing import Final

from openinfusion.druglib.model import Finding, error

CONFUSABLES_VERSION: Final = "13.0.0"
SCRIPTS_VERSION: Final = "15.0.0"

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt) that are not of general category Cf/Cc/Cn/Co/Cs,
# which are refused by category: combining grapheme joiner, Hangul fillers, variation selectors.
_IGNORABLE_RANGES: Final = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)
_INVISIBLE_CATEGORIES: Final = frozenset({"Cf", "Cc", "Cn", "Co", "Cs", "Zl", "Zp"})
_NEUTRAL_SCRIPTS: Final = frozenset({"Common", "Inherited"})
_HAN_COMBINATIONS: Final = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),  # Japanese
    frozenset({"Latin", "Han", "Hangul"}),  # Korean
    frozenset({"Latin", "Han", "Bopomofo"}),  # Chinese with Bopomofo
)


def _data(name: str) -> str:
    return resources.files("openinfusion.druglib").joinpath("unicode", name).read_text(encoding="utf-8-sig")


def _code_points(text: str) -> str:
    return "".join(chr(int(cp, 16)) for cp in text.split())


@functools.cache
def confusables() -> dict[str, str]:
    """The UTS #39 prototype of every confusable code point (``confusables.txt``)."""
    table: dict[str, str] = {}
    for line in _data("confusables.txt").splitlines():
        body = line.split("#", 1)[0].strip()
        if body:
            source, target, _ = (part.strip() for part in body.split(";"))
            table[_code_points(source)] = _code_points(target)
    return table


@functools.cache
def _script_ranges() -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]:
    rows: list[tuple[int, int, str]] = []
    for line in _data("Scripts.txt").splitlines():
        body = line.split("#", 1)[0].strip()
        if body:
            span, script = (part.strip() for part in body.split(";"))
            first, _, last = span.partition("..")
            rows.append((int(first, 16), int(last or first, 16), script))
    rows.sort()
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows)


def script_of(char: str) -> str:
    """The Unicode Script property of ``char`` (``Latin``, ``Cyrillic``, ``Common``, ...; ``Unknown``)."""
    starts, ends, scripts = _script_ranges()
    cp = ord(char)
    i = bisect_right(starts, cp) - 1
    return scripts[i] if i >= 0 and cp <= ends[i] else "Unknown"


def scripts(text: str) -> frozenset[str]:
    """The scripts of ``text``'s characters, Common and Inherited (digits, spaces, marks) aside."""
    return frozenset(s for s in map(script_of, text) if s not in _NEUTRAL_SCRIPTS)


def mixed_script(text: str) -> bool:
    """True unless ``text`` is single-script, or one of UTS #39's Han combinations ("highly restrictive")."""
    found = scripts(text)
    return len(found) > 1 and not any(found <= allowed for allowed in _HAN_COMBINATIONS)


def invisible(char: str) -> bool:
    """True for a code point that shows nothing, or changes how its neighbours show (ZWSP, RLO, ...)."""
    cp = ord(char)
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    return any(lo <= cp <= hi for lo, hi in _IGNORABLE_RANGES)


def collapse(text: str) -> str:
    """Whitespace trimmed and runs of it made one space."""
    return " ".join(text.split())


def normal(text: str) -> str:
    """The form two names are compared in: NFKC, case-folded, whitespace collapsed."""
    return collapse(unicodedata.normalize("NFKC", text).casefold())


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``: NFD, each code point mapped to its prototype, NFD."""
    table = confusables()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(table.get(c, c) for c in decomposed))


def looks(text: str) -> frozenset[str]:
    """The skeletons a name is compared by: of its case-folded normal form, and of its letters as written
    (``I`` and ``l`` look alike only before case folding)."""
    return frozenset({skeleton(normal(text)), skeleton(collapse(unicodedata.normalize("NFKC", text)))})


def code_point(char: str) -> str:
    """``U+043E CYRILLIC SMALL LETTER O``."""
    return f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"


def visible(text: str) -> str:
    """``text`` with every character outside printable ASCII written as ``<U+XXXX>``, quoted if its spaces matter.

    Two different strings never print alike: ``dopamine`` and ``d<U+043E>pamine``; ``"dopamine "``.
    """
    shown = "".join(c if " " <= c <= "~" and c != "<" else f"<U+{ord(c):04X}>" for c in text)
    return f'"{shown}"' if shown != collapse(shown) else shown


def name_problems(where: str, text: str) -> list[Finding]:
    """What makes ``text`` unusable as a name on its own: invisible characters, untidy spacing, compatibility
    forms, mixed scripts (OI-LIB-NAME-1)."""
    hidden = [c for c in text if invisible(c) and c not in " "]
    if hidden:
        listed = ", ".join(code_point(c) for c in dict.fromkeys(hidden))
        return [error(where, "invisible_character", f"contains invisible characters: {listed}", visible(text))]
    found: list[Finding] = []
    if text != collapse(text):
        found.append(
            error(where, "untidy_whitespace", "leading, trailing or repeated whitespace (or a tab)", visible(text))
        )
    nfkc = unicodedata.normalize("NFKC", text)
    if nfkc != text:
        changed = ", ".join(code_point(c) for c in dict.fromkeys(text) if unicodedata.normalize("NFKC", c) != c)
        found.append(
            error(
                where, "not_normalised", f"compatibility characters ({changed}); write {visible(nfkc)}", visible(text)
            )
        )
    if mixed_script(text):
        foreign = ", ".join(sorted(scripts(text)))
        found.append(
            error(where, "mixed_script", f"mixes scripts ({foreign}): a look-alike of another name", visible(text))
        )
    return found


@dataclass(slots=True)
class Namespace:
    """Names that must stay distinguishable: each name belongs to an owner (a drug id, a care area, ...).

    :meth:`add` reports a name that another owner already uses, equal in :func:`normal` form
    (``duplicate``) or in a skeleton (:func:`looks`, ``confusable_name``) (OI-LIB-NAME-2).
    """

    what: str
    _normal: dict[str, tuple[str, str]] = field(default_factory=dict)
    _skeleton: dict[str, tuple[str, str]] = field(default_factory=dict)

    def add(self, where: str, text: str, owner: str) -> list[Finding]:
        key = normal(text)
        same = self._normal.get(key)
        if same is not None and same[0] != owner:
            return [
                error(
                    where,
                    "duplicate",
                    f"{self.what} {visible(text)} is the same name as {visible(same[1])} of {visible(same[0])} "
                    "(case, spacing and compatibility forms aside)",
                    visible(text),
                )
            ]
        others = (self._skeleton[k] for k in looks(text) if k in self._skeleton)
        alike = next((o for o in others if o[0] != owner), None)
        if alike is not None:
            return [
                error(
                    where,
                    "confusable_name",
                    f"{self.what} {visible(text)} looks like {visible(alike[1])} of {visible(alike[0])} "
                    "(Unicode confusables, UTS #39)",
                    visible(text),
                )
            ]
        self._normal.setdefault(key, (owner, text))
        for look in looks(text):
            self._skeleton.setdefault(look, (owner, text))
        return []
