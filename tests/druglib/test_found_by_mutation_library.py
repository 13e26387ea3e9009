"""Library behaviour the mutation criterion found unchecked once every safety requirement was evaluated (0037).

Each test fails with the surviving mutant it was written for: the hash the pump shows, the characters a
not-normalised name is told it contains, a name its own owner repeats, an out-of-range number shown shortened.
"""

from __future__ import annotations

import pytest

from openinfusion.druglib.names import Namespace, name_problems
from openinfusion.druglib.package import LibraryIdentity
from openinfusion.errors import UnitError
from openinfusion.units import exact


@pytest.mark.req("OI-DERS-5")
def test_the_identity_shown_carries_the_first_12_hex_digits_of_the_content_hash() -> None:
    identity = LibraryIdentity("Mercy Health", "Adult ICU", "2026.12", "0123456789abcdef" * 4)
    assert identity.short_hash == "0123456789ab"
    assert str(identity) == "Mercy Health / Adult ICU version 2026.12 (sha256 0123456789ab)"


@pytest.mark.req("OI-LIB-NAME-1")
def test_a_name_with_compatibility_characters_is_told_exactly_which_ones() -> None:
    (finding,) = name_problems("drugs[0].name", "\ufb01lgrastim")  # the "fi" ligature
    assert finding.rule == "not_normalised"
    assert "U+FB01" in finding.message
    assert "U+006C" not in finding.message  # the plain letters are not listed


@pytest.mark.req("OI-LIB-NAME-2")
def test_an_owner_may_repeat_its_own_name_or_a_look_alike_of_it_but_another_owner_may_not() -> None:
    names = Namespace("drug name")
    assert names.add("drugs[0].name", "Heparin", "heparin") == []
    assert names.add("drugs[0].aliases[0]", "HEPARIN", "heparin") == []  # the same drug: not a duplicate
    assert names.add("drugs[0].aliases[1]", "Hepar\u0456n", "heparin") == []  # its own look-alike (Cyrillic i)
    (duplicate,) = names.add("drugs[1].name", "heparin", "hep-2")
    assert duplicate.rule == "duplicate"
    (alike,) = names.add("drugs[2].name", "Hepar\u0456n", "hep-3")
    assert alike.rule in {"duplicate", "confusable_name"}


@pytest.mark.req("OI-LIB-IN-1")
def test_a_number_out_of_range_is_refused_and_shown_shortened() -> None:
    with pytest.raises(UnitError) as refused:
        exact("1.2345678901234567890123456789e40", "drugs[0].dose")
    assert refused.value.where == "drugs[0].dose"
    shown = refused.value.why.split(" is out of range")[0]
    assert shown == "1.2345678901234567890123"  # the first 24 characters, not the whole number
