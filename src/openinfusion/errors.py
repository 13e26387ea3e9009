"""The one exception hierarchy of openinfusion.

Every error raised on purpose by the package derives from :class:`OpenInfusionError`.
Errors a user can cause (a bad file, an out-of-range program, an unknown unit, a malformed
message) derive from :class:`InputError` and carry *where* (file, field path, segment) and
*why*; the CLI prints them as one line ``where: why`` and exits non-zero, never a traceback.
"""

from __future__ import annotations


class OpenInfusionError(Exception):
    """Root of every error openinfusion raises on purpose."""


class InputError(OpenInfusionError):
    """Bad input from a person or a file: says where and why.

    ``where`` is a location a person can find (``"program.rate"``, ``"lib.yaml: drugs[3].name"``);
    ``why`` is the reason in plain words.
    """

    def __init__(self, where: str, why: str) -> None:
        self.where = where
        self.why = why
        super().__init__(f"{where}: {why}" if where else why)

    def at(self, outer: str) -> InputError:
        """Return a copy of this error located inside ``outer`` (prefixing the path)."""
        where = f"{outer}.{self.where}" if self.where else outer
        return type(self)(where, self.why)


class UnitError(InputError):
    """An unknown, ambiguous or incompatible unit."""


class ProgramError(InputError):
    """An infusion program that cannot exist (negative rate, bolus beyond VTBI, ...)."""


class DoseLimitError(InputError):
    """A program outside a drug-library limit: a hard limit, or a soft limit without an override."""


class ConfigError(InputError):
    """Invalid pump, channel or mechanism configuration."""


class LibraryError(InputError):
    """An invalid drug library (file, entry, field, rule)."""


class ScenarioError(InputError):
    """An invalid simulation scenario (file, field path, reason)."""


class TransitionRefusedError(OpenInfusionError):
    """An event not allowed in the current channel state; the state is left untouched."""

    def __init__(self, state: str, event: str, reason: str) -> None:
        self.state = state
        self.event = event
        self.reason = reason
        super().__init__(f"event {event!r} refused in state {state!r}: {reason}")


class IntegrityError(OpenInfusionError):
    """Data whose signature, hash or schema version does not verify."""


class InvariantError(OpenInfusionError):
    """An internal invariant of the pump core does not hold: a defect, never user input.

    Raised by explicit checks (never ``assert``); the core's guarded entry fails the channel safe on it.
    """


class CoreFaultError(OpenInfusionError):
    """An unexpected failure inside the pump core: the pump has failed safe (motors latched off, FAILSAFE)."""

    def __init__(self, entry: str, cause: str) -> None:
        self.entry = entry
        self.cause = cause
        super().__init__(f"pump failed safe in {entry}: {cause}")
