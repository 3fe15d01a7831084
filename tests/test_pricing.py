from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from ds_magic import pricing
from ds_magic.pricing import Cost, PriceEntry, Rates, estimate_cost, format_usd, is_peak, set_prices
from ds_magic.types import Usage

UTC = timezone.utc
# 0.1M cache-hit + 0.2M cache-miss input tokens, 0.05M output tokens.
USAGE = Usage(
    prompt_tokens=300_000, completion_tokens=50_000, cache_hit_tokens=100_000, cache_miss_tokens=200_000
)

WEDNESDAY_NOON = datetime(2026, 11, 11, 12, 0, tzinfo=UTC)  # off-peak
WEDNESDAY_PEAK = datetime(2026, 11, 11, 2, 0, tzinfo=UTC)
SATURDAY_PEAK_HOUR = datetime(2026, 11, 14, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _restore_prices() -> Iterator[None]:
    yield
    set_prices(None)


def test_fixture_dates_are_the_weekdays_they_claim() -> None:
    assert WEDNESDAY_NOON.weekday() == 2
    assert SATURDAY_PEAK_HOUR.weekday() == 5


# Hand-computed: hit×P_hit + miss×P_miss + out×P_out with the 0.1M / 0.2M / 0.05M usage above.
@pytest.mark.parametrize(
    ("model", "off_peak", "peak"),
    [
        # 0.1×0.003 + 0.2×0.15 + 0.05×0.60 = 0.0003 + 0.03 + 0.03; peak doubles every price
        ("deepseek-flash", 0.0603, 0.1206),
        # 0.1×0.022 + 0.2×0.66 + 0.05×1.98 = 0.0022 + 0.132 + 0.099; peak 0.0044 + 0.264 + 0.198
        ("deepseek-v4-pro", 0.2332, 0.4664),
        # billed at deepseek-flash prices since 2026-09-10
        ("deepseek-v4-flash", 0.0603, 0.1206),
        ("deepseek-v4-flash-vision-exp", 0.0603, 0.1206),
    ],
)
def test_current_models_off_peak_and_peak(model: str, off_peak: float, peak: float) -> None:
    low = estimate_cost(model, USAGE, WEDNESDAY_NOON)
    high = estimate_cost(model, USAGE, WEDNESDAY_PEAK)
    assert low is not None and high is not None
    assert low.usd == pytest.approx(off_peak)
    assert low.peak is False
    assert high.usd == pytest.approx(peak)
    assert high.peak is True
    assert low.model == model
    assert low.as_of == pricing.PRICES_AS_OF


def test_weekend_is_off_peak() -> None:
    assert not is_peak(SATURDAY_PEAK_HOUR)
    assert not is_peak(SATURDAY_PEAK_HOUR + timedelta(days=1, hours=5))  # Sunday 07:00
    cost = estimate_cost("deepseek-flash", USAGE, SATURDAY_PEAK_HOUR)
    assert cost is not None and cost.peak is False
    assert cost.usd == pytest.approx(0.0603)


@pytest.mark.parametrize(
    ("hhmm", "expected"),
    [
        ("00:59", False),
        ("01:00", True),
        ("03:59", True),
        ("04:00", False),
        ("05:59", False),
        ("06:00", True),
        ("09:59", True),
        ("10:00", False),
        ("23:30", False),
    ],
)
def test_peak_window_boundaries(hhmm: str, expected: bool) -> None:
    hour, minute = map(int, hhmm.split(":"))
    assert is_peak(datetime(2026, 11, 11, hour, minute, tzinfo=UTC)) is expected


def test_last_second_before_the_window_ends_is_still_peak() -> None:
    assert is_peak(datetime(2026, 11, 11, 3, 59, 59, 999_999, tzinfo=UTC))


def test_no_peak_before_peak_billing_started() -> None:
    assert not is_peak(datetime(2026, 8, 12, 2, 0, tzinfo=UTC))  # a Wednesday
    assert not is_peak(datetime(2026, 8, 16, 15, 59, tzinfo=UTC))
    assert is_peak(datetime(2026, 8, 17, 2, 0, tzinfo=UTC))  # the first Monday


def test_other_timezones_and_naive_datetimes_are_read_as_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert is_peak(datetime(2026, 11, 11, 10, 0, tzinfo=beijing))  # 02:00 UTC
    assert not is_peak(datetime(2026, 11, 11, 12, 30, tzinfo=beijing))  # 04:30 UTC
    assert is_peak(datetime(2026, 11, 11, 2, 0))


@pytest.mark.parametrize(
    ("model", "when", "expected"),
    [
        # V3: 0.1×0.07 + 0.2×0.27 + 0.05×1.10
        ("deepseek-chat", datetime(2025, 6, 1, tzinfo=UTC), 0.116),
        # R1: 0.1×0.14 + 0.2×0.55 + 0.05×2.19
        ("deepseek-reasoner", datetime(2025, 6, 1, tzinfo=UTC), 0.2335),
        # V3.1: 0.1×0.07 + 0.2×0.56 + 0.05×1.68
        ("deepseek-chat", datetime(2025, 9, 10, tzinfo=UTC), 0.203),
        # V3.2: 0.1×0.028 + 0.2×0.28 + 0.05×0.42
        ("deepseek-reasoner", datetime(2025, 12, 1, tzinfo=UTC), 0.0798),
        # V4 launch: 0.1×0.028 + 0.2×0.14 + 0.05×0.28
        ("deepseek-v4-flash", datetime(2026, 5, 1, tzinfo=UTC), 0.0448),
        # V4-Pro launch discount: 0.1×0.03625 + 0.2×0.435 + 0.05×0.87
        ("deepseek-v4-pro", datetime(2026, 5, 1, tzinfo=UTC), 0.134125),
        # v4-flash peak, Tuesday 2026-09-01 02:00: 0.1×0.014 + 0.2×0.44 + 0.05×1.32
        ("deepseek-v4-flash", datetime(2026, 9, 1, 2, 0, tzinfo=UTC), 0.1554),
    ],
)
def test_historical_dates_select_the_old_price(model: str, when: datetime, expected: float) -> None:
    cost = estimate_cost(model, USAGE, when)
    assert cost is not None
    assert cost.usd == pytest.approx(expected)


def test_entry_switches_at_its_effective_time() -> None:
    before = estimate_cost("deepseek-v4-flash", USAGE, datetime(2026, 9, 9, 23, 59, tzinfo=UTC))
    after = estimate_cost("deepseek-v4-flash", USAGE, datetime(2026, 9, 10, 0, 0, tzinfo=UTC))
    assert before is not None and after is not None
    assert before.usd == pytest.approx(0.1 * 0.007 + 0.2 * 0.22 + 0.05 * 0.66)  # Aug off-peak
    assert after.usd == pytest.approx(0.0603)


def test_unknown_model_time_before_any_price_and_missing_usage_give_none() -> None:
    assert estimate_cost("gpt-4o", USAGE, WEDNESDAY_NOON) is None
    assert estimate_cost("deepseek-flash", USAGE, datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert estimate_cost("deepseek-flash", None, WEDNESDAY_NOON) is None


def test_when_defaults_to_now() -> None:
    cost = estimate_cost("deepseek-flash", USAGE)
    assert cost is not None
    assert cost.usd in (pytest.approx(0.0603), pytest.approx(0.1206))


def test_any_object_with_the_three_counts_works() -> None:
    usage = SimpleNamespace(cache_hit_tokens=0, cache_miss_tokens=1_000_000, completion_tokens=0)
    cost = estimate_cost("deepseek-flash", usage, WEDNESDAY_NOON)
    assert cost is not None and cost.usd == pytest.approx(0.15)


def test_reasoning_is_billed_inside_completion_tokens() -> None:
    with_reasoning = Usage(completion_tokens=1_000_000, reasoning_tokens=900_000)
    cost = estimate_cost("deepseek-flash", with_reasoning, WEDNESDAY_NOON)
    assert cost is not None and cost.usd == pytest.approx(0.60)


def test_flat_override_per_call() -> None:
    flat = {"deepseek-flash": {"hit": 1.0, "miss": 2.0, "out": 3.0}}
    cost = estimate_cost("deepseek-flash", USAGE, WEDNESDAY_PEAK, prices=flat)
    assert cost is not None
    assert cost.usd == pytest.approx(0.1 * 1 + 0.2 * 2 + 0.05 * 3)
    assert cost.peak is None  # flat prices have no peak
    assert cost.as_of == "custom"
    # Other models keep their built-in prices, and the override does not outlive the call.
    pro = estimate_cost("deepseek-v4-pro", USAGE, WEDNESDAY_NOON, prices=flat)
    assert pro is not None and pro.usd == pytest.approx(0.2332)
    default = estimate_cost("deepseek-flash", USAGE, WEDNESDAY_NOON)
    assert default is not None and default.usd == pytest.approx(0.0603)


def test_set_prices_overrides_until_reset() -> None:
    set_prices({"deepseek-flash": {"hit": 0, "miss": 0, "out": 10}})
    cost = estimate_cost("deepseek-flash", USAGE, WEDNESDAY_NOON)
    assert cost is not None and cost.usd == pytest.approx(0.5)
    set_prices(None)
    cost = estimate_cost("deepseek-flash", USAGE, WEDNESDAY_NOON)
    assert cost is not None and cost.usd == pytest.approx(0.0603)


def test_table_override_adds_a_model_with_dated_entries() -> None:
    table = {
        "my-model": [
            PriceEntry(datetime(2026, 10, 1, tzinfo=UTC), Rates(0, 0, 2.0), note="later"),
            PriceEntry(datetime(2026, 1, 1, tzinfo=UTC), Rates(0, 0, 1.0), note="earlier"),
        ]
    }
    early = estimate_cost("my-model", USAGE, datetime(2026, 5, 1, tzinfo=UTC), prices=table)
    late = estimate_cost("my-model", USAGE, WEDNESDAY_NOON, prices=table)
    assert early is not None and early.usd == pytest.approx(0.05)
    assert late is not None and late.usd == pytest.approx(0.10)


@pytest.mark.parametrize(
    "bad",
    [{"hit": 1.0, "miss": 2.0}, {"hit": "cheap", "miss": 1, "out": 1}, {"hit": -1, "miss": 1, "out": 1}],
)
def test_bad_flat_override_says_what_is_wrong(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="deepseek-flash"):
        set_prices({"deepseek-flash": bad})  # type: ignore[arg-type]


def test_table_records_its_source() -> None:
    assert pricing.PRICES_AS_OF == "2026-11-15"
    assert pricing.PRICES_SOURCE.startswith("https://api-docs.deepseek.com/")
    for model, entries in pricing.PRICE_TABLE.items():
        starts = [e.effective_from for e in entries]
        assert starts == sorted(starts), model
        assert all(e.currency == "USD" and e.effective_from.tzinfo is not None for e in entries)


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0.0012345, "≈$0.0012"),
        (0.00019, "≈$0.00019"),
        (0.001, "≈$0.001"),
        (0.0603, "≈$0.06"),
        (0.1, "≈$0.10"),
        (0.2335, "≈$0.23"),
        (12.3456, "≈$12.35"),
        (1234.5, "≈$1,234.50"),
        (0.000003, "<$0.00001"),
        (0.0, "$0"),
    ],
)
def test_str_formatting(usd: float, text: str) -> None:
    assert str(Cost(usd=usd, model="deepseek-flash", peak=False, as_of="2026-11-15")) == text
    assert format_usd(usd) == text


def test_cost_is_frozen() -> None:
    cost = Cost(usd=1.0, model="m", peak=None, as_of="x")
    with pytest.raises(AttributeError):
        cost.usd = 2.0  # type: ignore[misc]
