"""fallback.py's schedule: when the plain-text fallback is re-sent, and the bound on what it costs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ds_magic.jupyter.fallback import FACTOR, MIN_INTERVAL, FallbackSchedule


def test_first_token_at_once_then_only_after_growth_and_time():
    s = FallbackSchedule()
    assert not s.due(0, now=0.0)  # no answer yet: the first display's status stays
    assert s.due(5, now=0.1)  # the first token
    assert not s.due(19, now=0.1 + MIN_INTERVAL)  # not grown 4× yet
    assert not s.due(20, now=0.1 + MIN_INTERVAL / 2)  # grown, but too soon
    assert s.due(20, now=0.1 + MIN_INTERVAL)
    assert s.refreshes == 2


# An answer that grows (chars never shrink) at arbitrary moments.
_steps = st.lists(st.tuples(st.integers(0, 5_000), st.floats(0, 10)), min_size=1, max_size=300)


@given(_steps)
def test_refreshes_never_carry_more_than_factor_over_factor_minus_one_times_the_answer(steps):
    s = FallbackSchedule()
    chars, now, sent = 0, 0.0, 0
    for grow, wait in steps:
        chars += grow
        now += wait
        if s.due(chars, now=now):
            sent += chars
    assert sent <= FACTOR / (FACTOR - 1) * chars
