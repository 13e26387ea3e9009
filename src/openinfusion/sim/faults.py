"""Faults the simulator can inject: one frozen dataclass each, with safe defaults.

Faults are applied through the sim-only control interface (:class:`FaultTarget`, implemented by
``VirtualPump.inject`` / ``VirtualPump.clear``), never through the HAL: the firmware sees only their
effects on its devices. Channel faults name the channel they hit; pump faults (power, clock, storage,
annunciator) take ``channel=None``. Each class states what the firmware will observe.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Literal, Protocol

from openinfusion.sim.params import check_int, check_real, require
from openinfusion.units import Duration

Side = Literal["downstream", "upstream"]
SIDES: tuple[Side, ...] = ("downstream", "upstream")


class FaultKind(Enum):
    """The closed set of injectable faults (``clear`` takes one of these)."""

    STUCK_PRESSURE = "stuck_pressure"
    DRIFTING_PRESSURE = "drifting_pressure"
    AIR_DETECTOR_FAILURE = "air_detector_failure"
    MOTOR_STALL = "motor_stall"
    ENCODER_SLIP = "encoder_slip"
    MISSED_TIMER_TICK = "missed_timer_tick"
    CLOCK_JUMP = "clock_jump"
    BATTERY_CELL_FAILURE = "battery_cell_failure"
    STORAGE_CORRUPTION = "storage_corruption"
    ANNUNCIATOR_FAILURE = "annunciator_failure"

    @property
    def per_channel(self) -> bool:
        """True if the fault hits one channel (and needs its index)."""
        return self in _CHANNEL_KINDS


_CHANNEL_KINDS = frozenset(
    {
        FaultKind.STUCK_PRESSURE,
        FaultKind.DRIFTING_PRESSURE,
        FaultKind.AIR_DETECTOR_FAILURE,
        FaultKind.MOTOR_STALL,
        FaultKind.ENCODER_SLIP,
    }
)


def _check_side(side: str) -> None:
    require(side in SIDES, "fault.side", f"must be one of {SIDES}, got {side!r}")


@dataclass(frozen=True, slots=True)
class StuckPressureSensor:
    """The transducer's output freezes: at ``value_mmhg``, or at its last reading if None.

    Its diagnostics flag it (batch health FAULT) only if ``self_detected``.
    """

    kind: ClassVar[FaultKind] = FaultKind.STUCK_PRESSURE
    side: Side = "downstream"
    value_mmhg: float | None = None
    self_detected: bool = False

    def __post_init__(self) -> None:
        _check_side(self.side)
        if self.value_mmhg is not None:
            check_real(self.value_mmhg, -760.0, 10_000.0, "fault.value_mmhg")


@dataclass(frozen=True, slots=True)
class DriftingPressureSensor:
    """The transducer's zero drifts by ``rate_mmhg_per_h`` from the moment of injection (health stays OK)."""

    kind: ClassVar[FaultKind] = FaultKind.DRIFTING_PRESSURE
    side: Side = "downstream"
    rate_mmhg_per_h: float = 20.0

    def __post_init__(self) -> None:
        _check_side(self.side)
        check_real(self.rate_mmhg_per_h, -10_000.0, 10_000.0, "fault.rate_mmhg_per_h")


@dataclass(frozen=True, slots=True)
class AirDetectorFailure:
    """The air detector sees no bubble. If ``self_test_fails`` its self-test fails and its health is FAULT;
    otherwise it fails silently: only the periodic simulated-air check sees it (``AirDetector.simulate_air``)."""

    kind: ClassVar[FaultKind] = FaultKind.AIR_DETECTOR_FAILURE
    self_test_fails: bool = True


@dataclass(frozen=True, slots=True)
class MotorStall:
    """The shaft stops: the driver keeps issuing pulses, the encoder stops counting and no fluid moves.

    If ``flagged`` the driver's stall detection raises ``MotorStatus.stalled`` at the first pulse into the
    stalled shaft (an interrupt); otherwise only the encoder shows it.
    """

    kind: ClassVar[FaultKind] = FaultKind.MOTOR_STALL
    flagged: bool = True


@dataclass(frozen=True, slots=True)
class EncoderSlip:
    """The encoder loses ``fraction`` of the counts of the shaft's motion (the shaft and fluid move normally)."""

    kind: ClassVar[FaultKind] = FaultKind.ENCODER_SLIP
    fraction: float = 0.1

    def __post_init__(self) -> None:
        check_real(self.fraction, 0.0, 1.0, "fault.fraction")


@dataclass(frozen=True, slots=True)
class MissedTimerTick:
    """The next ``kicks`` watchdog kicks are lost (the timer interrupt that services it did not run).

    The virtual watchdog then bites when its window runs out.
    """

    kind: ClassVar[FaultKind] = FaultKind.MISSED_TIMER_TICK
    kicks: int = 1

    def __post_init__(self) -> None:
        check_int(self.kicks, 1, 1_000_000, "fault.kicks")


@dataclass(frozen=True, slots=True)
class ClockJump:
    """The pump's clock jumps forward by ``jump`` (a glitch of its time base).

    The watchdog runs on its own oscillator: the next kick carries a time that disagrees with its own,
    and it bites.
    """

    kind: ClassVar[FaultKind] = FaultKind.CLOCK_JUMP
    jump: Duration = Duration.s(5)

    def __post_init__(self) -> None:
        require(self.jump.us > 0, "fault.jump", "must be positive")


@dataclass(frozen=True, slots=True)
class BatteryCellFailure:
    """One cell of the pack shorts: the pack voltage collapses below cut-off (the pump dies unless on mains).

    The fuel gauge raises its cell-fault flag if ``detected_by_gauge``.
    """

    kind: ClassVar[FaultKind] = FaultKind.BATTERY_CELL_FAILURE
    detected_by_gauge: bool = True


@dataclass(frozen=True, slots=True)
class StorageCorruption:
    """Bits flip in stored configuration: ``xor_mask`` at byte ``offset`` (the recorded digest is unchanged)."""

    kind: ClassVar[FaultKind] = FaultKind.STORAGE_CORRUPTION
    offset: int = 0
    xor_mask: int = 0x01

    def __post_init__(self) -> None:
        check_int(self.offset, 0, 1 << 30, "fault.offset")
        check_int(self.xor_mask, 1, 0xFF, "fault.xor_mask")


@dataclass(frozen=True, slots=True)
class AnnunciatorFailure:
    """The loudspeaker is dead: nothing sounds and the tone self-test fails."""

    kind: ClassVar[FaultKind] = FaultKind.ANNUNCIATOR_FAILURE


Fault = (
    StuckPressureSensor
    | DriftingPressureSensor
    | AirDetectorFailure
    | MotorStall
    | EncoderSlip
    | MissedTimerTick
    | ClockJump
    | BatteryCellFailure
    | StorageCorruption
    | AnnunciatorFailure
)


class FaultTarget(Protocol):
    """The sim-only control interface for faults. ``openinfusion.pump`` never sees it."""

    def inject(self, fault: Fault, channel: int | None = None) -> None:
        """Apply ``fault`` now: to ``channel`` for a channel fault, pump-wide with ``channel=None``."""
        ...

    def clear(self, kind: FaultKind, channel: int | None = None) -> None:
        """Remove the fault of ``kind`` (on ``channel`` for a channel fault); clearing an absent fault is a no-op."""
        ...
