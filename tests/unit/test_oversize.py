"""A frame over the limit, replayed by every Resume, must not loop (oversize.OversizeGuard)."""

from __future__ import annotations

from qqworker.oversize import MAX_SKIPS, Move, OversizeDecision, OversizeGuard


def test_a_one_off_resumes_and_a_repeat_at_the_same_position_skips_that_frame() -> None:
    guard = OversizeGuard()
    assert guard.too_big(7) == OversizeDecision(Move.RESUME)
    assert guard.too_big(7) == OversizeDecision(Move.SKIP, 8, 8, 8)
    # Past it, a later oversized frame elsewhere is a one-off again.
    assert guard.too_big(20) == OversizeDecision(Move.RESUME)


def test_oversized_frames_in_a_row_are_skipped_one_by_one_then_the_session_is_given_up() -> None:
    guard = OversizeGuard()
    seq = 7
    for _ in range(MAX_SKIPS):
        assert guard.too_big(seq).move is Move.RESUME
        verdict = guard.too_big(seq)
        assert verdict.move is Move.SKIP and verdict.seq == seq + 1
        seq += 1
    assert guard.too_big(seq).move is Move.RESUME
    assert guard.too_big(seq) == OversizeDecision(Move.IDENTIFY, seq, seq + 1, None)


def test_without_a_resumable_session_there_is_nothing_to_skip() -> None:
    guard = OversizeGuard()
    assert all(guard.too_big(None).move is Move.RESUME for _ in range(5))


def test_progress_between_two_oversized_frames_starts_the_count_over() -> None:
    guard = OversizeGuard()
    for seq in (5, 9, 14, 30):
        assert guard.too_big(seq).move is Move.RESUME
