"""Frames too large for the limit cannot loop: what to do after a 1009 close, as a pure decision.

A frame over `--max-frame-bytes` makes the link close with 1009 before the frame is parsed, so its
seq is never recorded; the Resume that follows replays it, and it closes the link again, without
end. The frame in question is the one right after the last seq received (every frame before it in
the replay was taken). So: the first 1009 at a position resumes as usual (a one-off); a second one
at the same position moves past it (the next Resume asks from seq + 1) and the lost seq is logged;
after MAX_SKIPS positions skipped in a row without other progress, the session is given up and the
worker Identifies anew (everything after the position is lost, and said so).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_SKIPS = 3


class Move(str, Enum):
    RESUME = "resume"  # a first 1009 here: Resume as usual
    SKIP = "skip"  # again here: Resume past the frame
    IDENTIFY = "identify"  # skipping does not help: drop the session


@dataclass(frozen=True)
class OversizeDecision:
    move: Move
    seq: int | None = None  # SKIP: the seq to Resume from (the frame's own seq); IDENTIFY: the last kept
    lost_first: int | None = None
    lost_last: int | None = None  # None with a lost_first: everything from lost_first on


class OversizeGuard:
    def __init__(self) -> None:
        self._position: int | None = None  # the resume seq of the last 1009
        self._strikes = 0
        self._skips = 0

    def too_big(self, resume_seq: int | None) -> OversizeDecision:
        """A 1009 ended the connection while the session had received up to `resume_seq`."""
        if resume_seq is None:
            self._position, self._strikes, self._skips = None, 0, 0
            return OversizeDecision(Move.RESUME)
        if resume_seq == self._position:
            self._strikes += 1
        else:
            if self._position is None or resume_seq != self._position + 1:
                self._skips = 0  # progress beyond the last position skipped: a new story
            self._position, self._strikes = resume_seq, 1
        if self._strikes < 2:
            return OversizeDecision(Move.RESUME)
        if self._skips >= MAX_SKIPS:
            self._position, self._strikes, self._skips = None, 0, 0
            return OversizeDecision(Move.IDENTIFY, resume_seq, resume_seq + 1, None)
        self._skips += 1
        self._strikes = 0
        return OversizeDecision(Move.SKIP, resume_seq + 1, resume_seq + 1, resume_seq + 1)
