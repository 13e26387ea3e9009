"""The one error class of the verification layer (to move to ``openinfusion.errors``; see the lab report)."""

from __future__ import annotations

from openinfusion.errors import InputError


class AnalysisError(InputError):
    """Data or settings a verification analysis cannot measure: too short a record, a window that is not
    a whole number of balance intervals, a non-finite reading."""
