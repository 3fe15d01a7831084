"""Off-peak runs driven by an injected clock (no real waiting): the wait and its countdown, Cancel during
the wait, a pause when the window ends mid-run, finish=True; the windows come from PEAK_HOURS."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from offline_helpers import KEY, Sleeps

import ds_magic
from ds_magic import Client, OffPeak, RetryPolicy
from ds_magic.batch_progress import BatchProgress, format_progress
from ds_magic.offpeak import next_offpeak, window_at
from ds_magic.pricing import PEAK_HOURS, PeakHours, is_peak, set_peak_hours
from ds_magic.testing import Script

UTC = timezone.utc
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # peak 01:00–04:00 and 06:00–10:00 UTC
HANG = 120  # hang guard, seconds (a loaded 2-core CI machine)


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


class FakeClock:
    """The time the gate reads; the test (or a progress callback) moves it."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


class Watch:
    """A progress callback that keeps every snapshot and signals a condition on them."""

    def __init__(self, on=None) -> None:
        self.snaps: list[BatchProgress] = []
        self.cond = threading.Condition()
        self.on = on

    def __call__(self, p: BatchProgress) -> None:
        with self.cond:
            self.snaps.append(p)
            self.cond.notify_all()
        if self.on is not None:
            self.on(p)

    def wait_for(self, pred) -> BatchProgress:
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(p) for p in self.snaps), HANG), self.snaps[-3:]
            return next(p for p in self.snaps if pred(p))


def make_client(srv) -> Client:
    return Client(api_key=KEY, base_url=srv.url, retry=RetryPolicy(max_retries=0, sleep=Sleeps()))


# ------------------------------------------------------------------ the windows, as data
@given(st.datetimes(min_value=datetime(2026, 6, 1), max_value=datetime(2028, 12, 31)))
def test_windows_agree_with_is_peak_and_change_at_their_ends(t):
    t = t.replace(tzinfo=UTC)
    w = window_at(t)
    assert w.peak == is_peak(t)
    assert w.start is None or w.start <= t
    if w.end is not None:
        assert t < w.end
        assert is_peak(w.end) != w.peak and is_peak(w.end - timedelta(microseconds=1)) == w.peak
    assert not is_peak(next_offpeak(t))


def test_the_windows_are_read_from_the_price_table():
    assert window_at(MONDAY + timedelta(hours=7)).label == "peak 2026-11-30 06:00–2026-11-30 10:00 UTC"
    assert window_at(MONDAY + timedelta(hours=11)).label == "off-peak 2026-11-30 10:00–2026-12-01 01:00 UTC"
    # A change in DeepSeek's rules is a data change: one more entry in the table.
    rule = PeakHours(MONDAY, weekdays=(0,), windows=((12 * 60, 13 * 60),), note="test")
    set_peak_hours([*PEAK_HOURS, rule])
    try:
        assert window_at(MONDAY + timedelta(hours=12, minutes=30)).label == (
            "peak 2026-11-30 12:00–2026-11-30 13:00 UTC"
        )
        assert not window_at(MONDAY + timedelta(hours=7)).peak and not is_peak(MONDAY + timedelta(hours=7))
    finally:
        set_peak_hours(None)
    assert window_at(MONDAY + timedelta(hours=7)).peak


# ------------------------------------------------------------------ runs under the gate
def test_an_off_peak_run_waits_with_a_countdown_then_runs_in_the_window(srv):
    clock = FakeClock(MONDAY + timedelta(hours=9, minutes=58, seconds=30))
    watch = Watch()
    result = ds_magic.batch(
        "Label: {item}", ["a", "b", "c"], client=make_client(srv), when=OffPeak(clock=clock), progress=watch
    )
    waiting = watch.wait_for(lambda p: p.waiting is not None)
    assert waiting.waiting == 90.0 and waiting.pending == 3
    assert "waiting for off-peak: starts in 1m30s" in format_progress(waiting)
    assert srv.requests == []
    clock.t = MONDAY + timedelta(hours=10)
    result.wait(HANG)
    rows = result.rows()
    assert [r["status"] for r in rows] == ["ok"] * 3 and len(srv.requests) == 3
    assert {r["window"] for r in rows} == {"off-peak 2026-11-30 10:00–2026-12-01 01:00 UTC"}
    assert watch.snaps[-1].finished and watch.snaps[-1].waiting is None


def test_cancel_ends_the_wait_and_sends_nothing(srv):
    clock = FakeClock(MONDAY + timedelta(hours=7))
    watch = Watch()
    result = ds_magic.batch(
        "{item}", ["a", "b"], client=make_client(srv), run="night", when=OffPeak(clock=clock), progress=watch
    )
    watch.wait_for(lambda p: p.waiting is not None)
    result.cancel()
    result.wait(HANG)
    assert srv.requests == []
    assert watch.snaps[-1].cancelled == 2 and watch.snaps[-1].finished
    assert ds_magic.run("night").table(as_dataframe=False) == []  # nothing kept: both are still to send


def run_across_a_window_end(srv, finish: bool):
    clock = FakeClock(MONDAY + timedelta(minutes=30))  # off-peak until 01:00

    def move(p: BatchProgress) -> None:  # after two answers the window ends
        if p.done >= 2 and clock.t < MONDAY + timedelta(hours=1):
            clock.t = MONDAY + timedelta(hours=1)

    watch = Watch(on=move)
    srv.enqueue(*[Script(text="same answer", reasoning="") for _ in range(6)])
    gate = OffPeak(clock=clock)
    result = ds_magic.batch(
        "Label: {item}",
        [f"row {i}" for i in range(6)],
        client=make_client(srv),
        concurrency=1,
        when=gate,
        finish=finish,
        progress=watch,
    )
    return clock, watch, gate, result


def test_a_run_pauses_when_the_window_ends_and_goes_on_in_the_next(srv):
    clock, watch, gate, result = run_across_a_window_end(srv, finish=False)
    paused = watch.wait_for(lambda p: p.waiting is not None)
    assert paused.waiting == 3 * 3600  # peak 01:00–04:00
    sent = len(srv.requests)
    assert 2 <= sent < 6
    clock.t = MONDAY + timedelta(hours=4)
    result.wait(HANG)
    rows = result.rows()
    assert [r["status"] for r in rows] == ["ok"] * 6 and len(srv.requests) == 6
    windows = [r["window"] for r in rows]
    first = "off-peak 2026-11-27 10:00–2026-11-30 01:00 UTC"  # from Friday's last peak
    second = "off-peak 2026-11-30 04:00–2026-11-30 06:00 UTC"
    assert windows == [first] * sent + [second] * (6 - sent)
    assert gate.pauses == 1


def test_finish_true_does_not_pause_and_prices_the_rest_at_peak(srv):
    clock, watch, gate, result = run_across_a_window_end(srv, finish=True)
    result.wait(HANG)
    rows = result.rows()
    assert [r["status"] for r in rows] == ["ok"] * 6
    assert not any(p.waiting for p in watch.snaps) and gate.pauses == 0
    peak = [r for r in rows if r["window"] == "peak 2026-11-30 01:00–2026-11-30 04:00 UTC"]
    off = [r for r in rows if r["window"].startswith("off-peak")]
    assert peak and off
    # The same answer costs twice as much at peak (deepseek-api.md §5.1: off-peak is half).
    assert peak[0]["cost"] == pytest.approx(2 * off[0]["cost"])


def test_when_and_finish_are_checked():
    with pytest.raises(ValueError, match="off-peak"):
        ds_magic.batch(["a"], client=Client(api_key=KEY), when="tonight")
    with pytest.raises(ValueError, match="when='off-peak', finish=True"):
        ds_magic.batch(["a"], client=Client(api_key=KEY), finish=True)


def test_records_and_rows_carry_the_window_each_request_was_priced_in(srv):
    ds_magic.clear_records()
    ds_magic.batch(["a"], client=make_client(srv), run="w", progress=False).wait(HANG)
    rec = ds_magic.records(as_dataframe=False)[-1]
    assert rec["window"] == window_at(rec["time"]).name
    row = ds_magic.run("w").table(as_dataframe=False)[0]
    assert row["window"] == window_at(rec["time"]).label
    assert row["cost"] == pytest.approx(rec["cost"])
