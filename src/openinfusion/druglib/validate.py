"""Library validation: every problem, with entry, field, value and rule (issue 5, item 3; OI-DERS-1).

Two stages, both collecting *all* findings rather than stopping at the first:

1. the document's shape and the objects built from it (:mod:`openinfusion.druglib.schema`: pydantic, strict
   quantity and unit parsing, OI-UNIT-1);
2. the rules that span objects (:mod:`openinfusion.druglib.rules`), which
   :class:`~openinfusion.druglib.model.Library` runs again when built.

:func:`validate_data` runs both and returns a :class:`Report`; :func:`load_library` returns the library or
raises the first error.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from openinfusion.druglib.model import Finding, Library, Severity, raise_first
from openinfusion.druglib.schema import Builder, LibraryDoc, shape_findings
from openinfusion.errors import LibraryError


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of validating one library document: all findings, and the library if it is valid."""

    source: str
    findings: tuple[Finding, ...]
    library: Library | None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.library is not None

    def require(self) -> Library:
        """The library, or a LibraryError naming the first error (and how many there are)."""
        if self.library is None:
            raise_first(list(self.errors))
            raise LibraryError(self.source, "the library is invalid")
        return self.library


def validate_data(data: object, source: str = "") -> Report:
    """Validate a library document (the YAML/JSON shape, as plain data) and build the library."""
    try:
        doc = LibraryDoc.model_validate(data)
    except ValidationError as e:
        return Report(source, tuple(shape_findings(e, data)), None)
    findings, library = Builder(source).build(doc)
    return Report(source, findings, library)


def load_library(data: object, source: str = "") -> Library:
    """Like :func:`validate_data`, but return the library or raise the first error as LibraryError."""
    return validate_data(data, source).require()
