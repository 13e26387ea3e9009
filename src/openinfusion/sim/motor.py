"""Virtual stepper driver and shaft encoder (HAL ``Motor`` and ``Encoder``), and the simulator's time.

The driver's pulse train is analytic: a move of ``n`` steps over ``T`` started at ``t0`` has issued
``floor((t - t0) n / T)`` pulses at time ``t`` (pulse ``k`` at ``t0 + (k + 1) T / n``), so positions at any
sample times are one vectorised integer expression, whatever the rate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from openinfusion.errors import ConfigError
from openinfusion.pump.hal import MotorStatus, SensorHealth
from openinfusion.sim.arrays import I64, Bools
from openinfusion.sim.faults import EncoderSlip
from openinfusion.units import Duration

MAX_PRODUCT: Final = 1 << 62  # |steps| * over_us must stay below this (exact int64 arithmetic)


class SimTime:
    """The simulator's true time in integer microseconds, shared by its devices (the engine owns it)."""

    __slots__ = ("us",)

    def __init__(self) -> None:
        self.us = 0


class VirtualMotor:
    """Step/direction driver with a one-entry move queue.

    ``enabled`` is the driver's power (cut by the watchdog or a brown-out: moves are then refused and no
    pulse is issued). ``stall_flag`` is the driver's stall detection, raised by the channel; a new move
    clears it (the driver re-arms its detection).
    """

    def __init__(self, time: SimTime) -> None:
        self._time = time
        self._t0 = 0
        self._n = 0
        self._sign = 1
        self._over = 1
        self._base = 0
        self._origin = 0  # pulses issued before the last power-on (the driver's counter restarts at 0)
        self.enabled = True
        self.latched = False  # the safety latch cut the power stage (until power-off)
        self.ignores_stop = False  # a driver defect (sim.firmware_faults): stop() is not obeyed
        self.stall_flag = False

    def move(self, steps: int, over: Duration) -> None:
        """Issue ``steps`` pulses (negative = reverse) evenly over ``over``, replacing any move in progress."""
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise ConfigError("motor.move.steps", f"must be an integer, got {steps!r}")
        if over.us <= 0:
            raise ConfigError("motor.move.over", "must be positive")
        if abs(steps) * over.us >= MAX_PRODUCT:
            raise ConfigError("motor.move", "move too long: split it into shorter moves")
        self.halt()
        if not self.enabled or self.latched:
            return
        self.stall_flag = False
        self._t0, self._n, self._sign, self._over = self._time.us, abs(steps), 1 if steps >= 0 else -1, over.us

    def stop(self) -> None:
        """Stop at once: no further pulses until the next move."""
        if not self.ignores_stop:
            self.halt()

    def halt(self) -> None:
        """Cut the pulse train now (the power stage losing its enable: the latch and the watchdog use this)."""
        self._base = self.issued_at(self._time.us)
        self._n = 0

    def issued_steps(self) -> int:
        """Signed pulses issued since power-on, up to now."""
        return self.issued_at(self._time.us) - self._origin

    def power_on(self) -> None:
        """The driver was powered up again: its pulse counter restarts at 0."""
        self._origin = self.issued_at(self._time.us)

    def status(self) -> MotorStatus:
        return MotorStatus(moving=self.moving, stalled=self.stall_flag)

    # --- simulator side ----------------------------------------------------------------------------

    @property
    def moving(self) -> bool:
        """True while a move has pulses left to issue."""
        return self._n > 0 and self._time.us < self._t0 + self._over

    def issued_at(self, t_us: int) -> int:
        """Pulses issued up to time ``t_us`` (not before the current move started)."""
        if self._n == 0 or t_us <= self._t0:
            return self._base
        return self._base + self._sign * (min(t_us - self._t0, self._over) * self._n // self._over)

    def issued_array(self, t_us: I64) -> I64:
        """:meth:`issued_at` for each time of ``t_us`` (int64, exact)."""
        if self._n == 0:
            return np.full(t_us.shape, self._base, dtype=np.int64)
        elapsed = np.minimum(np.maximum(t_us - self._t0, 0), self._over)
        return self._base + self._sign * (elapsed * self._n // self._over)

    def energised(self, t_us: I64) -> Bools:
        """Whether the current move is running at each time (``t0 < t <= t0 + over``)."""
        if self._n == 0:
            return np.zeros(t_us.shape, dtype=np.bool_)
        return (t_us > self._t0) & (t_us - self._over <= self._t0)


class VirtualLatch:
    """The safety latch (HAL ``SafetyLatch``): cuts the motor's power stage; a latched motor refuses every move."""

    def __init__(self, motor: VirtualMotor) -> None:
        self._motor = motor

    def trip(self) -> None:
        self._motor.halt()
        self._motor.latched = True

    def tripped(self) -> bool:
        return self._motor.latched


class VirtualEncoder:
    """Shaft encoder: ``counts_per_step`` counts per step of the *shaft* (HAL ``Encoder``).

    With an :class:`~openinfusion.sim.faults.EncoderSlip` the counts of the shaft's motion since injection
    lose ``fraction`` (rounded towards zero); clearing it keeps the counts already lost.
    """

    def __init__(self, counts_per_step: int, shaft_steps: Callable[[], int]) -> None:
        self.counts_per_step = counts_per_step
        self._shaft = shaft_steps
        self._lost = 0
        self._slip: EncoderSlip | None = None
        self._slip_from = 0
        self._origin = 0  # counts before the last power-on (the encoder interface restarts at 0)

    def counts(self) -> int:
        return self.counts_per_step * self._shaft() - self._lost - self._slipping() - self._origin

    def power_on(self) -> None:
        """The encoder interface was powered up again: its count restarts at 0."""
        self._origin += self.counts()

    def health(self) -> SensorHealth:
        return SensorHealth.OK

    def _slipping(self) -> int:
        if self._slip is None:
            return 0
        return int(self._slip.fraction * self.counts_per_step * (self._shaft() - self._slip_from))

    def set_slip(self, fault: EncoderSlip | None) -> None:
        self._lost += self._slipping()
        self._slip = fault
        self._slip_from = self._shaft()
