"""The plan stack of one channel: what runs after the segment in progress.

Theory of operation
-------------------
A program compiles to a plan (a tuple of constant-rate :class:`~openinfusion.pump.programs.Segment`).
At run time the channel takes segments off the front of :attr:`PlanStack.plan`. A bolus, a secondary
(piggyback) or a PCA demand *interrupts* what runs: the remainder of the segment in progress and the
rest of the plan are pushed as a :class:`Suspended` frame, the inserted segments become the plan, and
when they are done the frame is popped and what was interrupted resumes (:meth:`PlanStack.unwind`).

Invariants: frames are popped in the reverse order they were pushed; a bolus's volume is deducted
from the frame it interrupted (it comes from the same container, so it counts towards the VTBI); a
confirmed titration changes the rate of every planned and suspended segment of the titrated kinds.
Nothing here reads hardware or time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from openinfusion.errors import InvariantError
from openinfusion.pump.pca import PcaProgram
from openinfusion.pump.programs import Program, SecondaryProgram, Segment, SegmentKind
from openinfusion.units import Duration, FlowRate, Volume


@dataclass(slots=True)
class Suspended:
    """A segment interrupted by a bolus, secondary or PCA demand, with the plan that followed it."""

    segment: Segment | None
    rest: list[Segment]
    program: Program | None = None  # set when a secondary replaced the active program


class PlanStack:
    """The segments still to run, and the frames of what was interrupted (innermost last)."""

    def __init__(self) -> None:
        self.plan: list[Segment] = []
        self.stack: list[Suspended] = []

    def load(self, segments: tuple[Segment, ...]) -> None:
        """A new program's plan; nothing is interrupted."""
        self.plan = list(segments)
        self.stack = []

    def clear(self) -> None:
        self.plan, self.stack = [], []

    def has_more(self) -> bool:
        """True if a segment remains after the one running (in the plan or in what was interrupted)."""
        return bool(self.plan) or any(held.segment is not None or held.rest for held in self.stack)

    def interrupted(self) -> bool:
        """True while a bolus, secondary or demand runs over something it interrupted."""
        return bool(self.stack)

    def pop_next(self) -> Segment:
        """The next planned segment (the plan must not be empty)."""
        if not self.plan:
            raise InvariantError("plan stack: no planned segment to start")
        return self.plan.pop(0)

    def suspend(self, remainder: Segment | None, inserted: tuple[Segment, ...], program: Program | None) -> Segment:
        """Push what runs (``remainder`` and the plan); ``inserted`` becomes the plan. Returns its first segment."""
        if not inserted:
            raise InvariantError("plan stack: an interruption needs at least one segment")
        self.stack.append(Suspended(remainder, self.plan, program))
        self.plan = list(inserted[1:])
        return inserted[0]

    def unwind(self) -> Suspended:
        """Pop the innermost frame; its rest becomes the plan."""
        if not self.stack:
            raise InvariantError("plan stack: nothing was interrupted")
        held = self.stack.pop()
        self.plan = held.rest
        return held

    def deduct(self, volume: Volume) -> None:
        """Take ``volume`` off the innermost frame's remaining segments, in order (a bolus counts to VTBI)."""
        if not self.stack:
            raise InvariantError("plan stack: nothing was interrupted")
        held = self.stack[-1]
        left = volume.nl

        def cut(segment: Segment | None) -> Segment | None:
            nonlocal left
            if segment is None or segment.volume is None or left == 0:
                return segment
            take = min(left, segment.volume.nl)
            left -= take
            return replace(segment, volume=Volume(segment.volume.nl - take)) if segment.volume.nl > take else None

        held.segment = cut(held.segment)
        held.rest = [kept for kept in map(cut, held.rest) if kept is not None]

    def retitrate(self, kinds: frozenset[SegmentKind], rate: FlowRate) -> None:
        """A confirmed titration: every planned and suspended segment of ``kinds`` runs at ``rate``."""
        self.plan = _with_rate(self.plan, kinds, rate)
        for held in self.stack:
            held.rest = _with_rate(held.rest, kinds, rate)
            if held.segment is not None and held.segment.kind in kinds:
                held.segment = replace(held.segment, rate=rate)

    def later(self) -> Iterator[Segment]:
        """Every segment still to run after the one in progress, in the order it will run."""
        yield from self.plan
        for held in reversed(self.stack):
            if held.segment is not None:
                yield held.segment
            yield from held.rest


def titrated_kinds(program: Program) -> frozenset[SegmentKind]:
    """The segment kinds whose rate a titration of ``program`` changes."""
    if isinstance(program, SecondaryProgram):
        return frozenset({SegmentKind.SECONDARY})
    if isinstance(program, PcaProgram):
        return frozenset({SegmentKind.BASAL})
    return frozenset({SegmentKind.PRIMARY})


def remainder(segment: Segment, done: Volume, elapsed: Duration, resolution: Volume) -> Segment | None:
    """What is left of ``segment`` after ``done`` volume and ``elapsed`` time (None if nothing).

    A volume-bounded segment with no more than ``resolution`` (one step's volume) left is done.
    """
    if segment.volume is not None:
        left = segment.volume.nl - max(done.nl, 0)
        return replace(segment, volume=Volume(left)) if left > resolution.nl else None
    if segment.duration is not None:
        left_t = segment.duration - elapsed
        return replace(segment, duration=left_t) if left_t.us > 0 else None
    return segment


def _with_rate(segments: list[Segment], kinds: frozenset[SegmentKind], rate: FlowRate) -> list[Segment]:
    return [replace(s, rate=rate) if s.kind in kinds else s for s in segments]
