"""Volume accounting of one channel: exact integer nanolitres, from the encoder.

Theory of operation
-------------------
The controller reports the fluid displaced since the program's origin (the encoder's shaft position
through the factory calibration, plus any drive play a back-off reversed through). Each service the
channel hands that measurement to :meth:`Accounting.account` together with the :class:`Bucket` that
was running: motion since the last service belongs to what was running then, because segments change
only at services. A bucket never goes below zero (a back-off withdraws from the line, not from what
the patient received), and the counters are integers, so totals never drift (OI-VOL-1).

The accounting also keeps the recent delivery trace (instant, displaced volume) the air monitor uses
to locate bubbles, and feeds the PCA ledger with every volume that counts towards the PCA limits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Final

from openinfusion.pump.pca import DoseKind
from openinfusion.pump.programs import Segment, SegmentKind
from openinfusion.pump.sensing.air import DeliveryTrace
from openinfusion.units import Instant, Volume

TRACE_POINTS: Final = 64  # recent (instant, displaced) points kept for the air monitor
#: Segment kinds whose volume counts towards the PCA limits as delivered (a demand is counted when given).
PCA_LEDGER_KINDS: Final = {
    SegmentKind.BASAL: DoseKind.BASAL,
    SegmentKind.LOADING: DoseKind.LOADING,
    SegmentKind.BOLUS: DoseKind.CLINICIAN,
}


@dataclass(frozen=True, slots=True)
class Counters:
    """Volumes since the program started, integer nL.

    ``delivered`` is the primary program's volume (loading, maintenance, steps, boluses and PCA doses: all
    from its container, so all count towards its VTBI); ``secondary`` came from the piggyback container;
    ``kvo`` ran after the VTBI completed (or between intermittent doses); ``displaced`` is everything the
    mechanism moved, net of back-off.
    """

    delivered: Volume = Volume(0)
    secondary: Volume = Volume(0)
    kvo: Volume = Volume(0)
    displaced: Volume = Volume(0)

    @property
    def total(self) -> Volume:
        return self.delivered + self.secondary + self.kvo


class Bucket(Enum):
    """The counter that motion is booked to."""

    DELIVERED = "delivered"
    SECONDARY = "secondary"
    KVO = "kvo"


def bucket_for(segment: Segment | None, in_kvo: bool) -> Bucket:
    """Where motion goes while ``segment`` runs (``in_kvo``: the channel is in its KVO state)."""
    if in_kvo or (segment is not None and segment.kind is SegmentKind.WAIT):
        return Bucket.KVO
    if segment is not None and segment.kind is SegmentKind.SECONDARY:
        return Bucket.SECONDARY
    return Bucket.DELIVERED


class Accounting:
    """The counters, the delivery trace and the play a back-off reversed through, for one program."""

    def __init__(self, now: Instant) -> None:
        self.counters = Counters()
        self.reverse_slack = Volume(0)  # play crossed by a back-off, not yet taken up again
        self._trace: list[tuple[Instant, Volume]] = [(now, Volume(0))]

    def restart(self, now: Instant) -> None:
        """A new program: every counter from zero."""
        self.counters = Counters()
        self._trace = [(now, Volume(0))]

    def live(self, measured: Volume, bucket: Bucket) -> Counters:
        """The counters if ``measured`` (displaced since the origin) were booked to ``bucket`` now."""
        c = self.counters
        measured = Volume(max(measured.nl, 0))  # below the origin only while syringe slack is taken up
        delta = measured.nl - c.displaced.nl
        match bucket:
            case Bucket.KVO:
                return replace(c, kvo=Volume(max(c.kvo.nl + delta, 0)), displaced=measured)
            case Bucket.SECONDARY:
                return replace(c, secondary=Volume(max(c.secondary.nl + delta, 0)), displaced=measured)
            case Bucket.DELIVERED:
                return replace(c, delivered=Volume(max(c.delivered.nl + delta, 0)), displaced=measured)

    def account(self, now: Instant, measured: Volume, bucket: Bucket) -> Volume:
        """Book the motion up to ``now``; returns how much the primary (delivered) counter grew."""
        before = self.counters.delivered
        self.counters = self.live(measured, bucket)
        last_t, last_v = self._trace[-1]
        if now > last_t:
            point = (now, Volume(max(self.counters.displaced.nl, last_v.nl)))
            self._trace = [*self._trace[-(TRACE_POINTS - 1) :], point]
        return Volume(max(self.counters.delivered.nl - before.nl, 0))

    def trace(self) -> DeliveryTrace:
        """Recent displaced volume as a function of time (for locating air)."""
        return DeliveryTrace(tuple(self._trace))
