"""Cost estimates from token usage and a dated price table (deepseek-api.md §5).

Prices are data, not code: ``PRICE_TABLE`` maps a model id to its price history, and
``estimate_cost`` picks the entry in effect when the request started. The numbers are estimates;
the account's bill is authoritative::

    >>> from datetime import datetime, timezone
    >>> from ds_magic.types import Usage
    >>> u = Usage(cache_hit_tokens=1000, cache_miss_tokens=1000, completion_tokens=1000)
    >>> str(estimate_cost("deepseek-flash", u, datetime(2026, 11, 14, tzinfo=timezone.utc)))
    '≈$0.00075'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from .dialect import answer_dialect

__all__ = [
    "cost_of",
    "PRICES_AS_OF",
    "PRICES_SOURCE",
    "PEAK_PRICING_SINCE",
    "Rates",
    "PriceEntry",
    "PriceTable",
    "Cost",
    "UsageLike",
    "PRICE_TABLE",
    "format_usd",
    "is_peak",
    "estimate_cost",
    "set_prices",
    "get_prices",
    "PeakHours",
    "PEAK_HOURS",
    "peak_hours_at",
    "get_peak_hours",
    "set_peak_hours",
    "price_entry",
]

PRICES_AS_OF = "2026-11-15"
"""Date of the newest pricing-page snapshot the table was checked against (``?check=20261115``)."""

PRICES_SOURCE = "https://api-docs.deepseek.com/quick_start/pricing"

PEAK_PRICING_SINCE = datetime(2026, 8, 16, 16, 0, tzinfo=timezone.utc)
"""Start of peak/off-peak billing (00:00 Beijing time, 2026-08-17)."""


@dataclass(frozen=True)
class PeakHours:
    """DeepSeek's peak windows from ``effective_from`` (UTC) until the next entry of ``PEAK_HOURS``.

    On each of ``weekdays`` (0 = Monday, in UTC), every ``[start, end)`` of ``windows`` (minutes
    after midnight UTC) is peak; all other times are off-peak. Data, not code: a change in
    DeepSeek's rules is a new entry here (offpeak.py reads the windows from this table).
    """

    effective_from: datetime
    weekdays: tuple[int, ...]
    windows: tuple[tuple[int, int], ...]
    note: str = ""


# 01:00–04:00 and 06:00–10:00 UTC are 09:00–12:00 and 14:00–18:00 Beijing time, so the weekday
# is the same in both zones (deepseek-api.md §5.1).
PEAK_HOURS: tuple[PeakHours, ...] = (
    PeakHours(
        PEAK_PRICING_SINCE,
        weekdays=(0, 1, 2, 3, 4),
        windows=((1 * 60, 4 * 60), (6 * 60, 10 * 60)),
        note="09:00–12:00 and 14:00–18:00 Beijing time, Monday–Friday (deepseek-api.md §5.1)",
    ),
)


@dataclass(frozen=True)
class Rates:
    """USD per 1M tokens: input with a cache hit, input with a cache miss, output."""

    hit: float
    miss: float
    out: float


@dataclass(frozen=True)
class PriceEntry:
    """Prices for one model from ``effective_from`` (UTC) until the next entry.

    ``rates`` are the flat prices, or the off-peak ones when ``peak`` is set.
    """

    effective_from: datetime
    rates: Rates
    peak: Rates | None = None
    currency: str = "USD"
    note: str = ""
    as_of: str = field(default=PRICES_AS_OF, compare=False)


PriceTable = Mapping[str, Sequence[PriceEntry]]
# A per-model flat override, e.g. {"deepseek-flash": {"hit": 0.003, "miss": 0.15, "out": 0.60}}.
FlatOverrides = Mapping[str, Mapping[str, float]]
PricesArg = PriceTable | FlatOverrides


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


# Where the source gives only a date, the entry starts at 00:00 UTC of that date.
_LEGACY_V3_2025 = _utc(2025, 2, 1)  # "2025-02" in §5.2; the day is not in the source
_V31 = _utc(2025, 9, 5)
_V32 = _utc(2025, 9, 29)
_V4 = _utc(2026, 4, 24)
# The mid-2026 snapshot (`?model_version=DeepSeek-V4-Pro-0813`) shows cache-hit prices cut tenfold;
# the real date of that cut is unknown, so the snapshot's date stands in for it.
_MID_2026 = _utc(2026, 8, 13)
_FLASH = _utc(2026, 9, 10)

_FLASH_RATES = Rates(hit=0.003, miss=0.15, out=0.60)
_FLASH_PEAK = Rates(hit=0.006, miss=0.30, out=1.20)
_V4_FLASH_AUG = Rates(hit=0.007, miss=0.22, out=0.66)
_V4_FLASH_AUG_PEAK = Rates(hit=0.014, miss=0.44, out=1.32)
_V4_FLASH_LAUNCH = Rates(hit=0.028, miss=0.14, out=0.28)

_flash_entry = PriceEntry(_FLASH, _FLASH_RATES, _FLASH_PEAK, note="deepseek-flash (V4.1-Flash)")
_v4_flash_aug_entry = PriceEntry(
    PEAK_PRICING_SINCE, _V4_FLASH_AUG, _V4_FLASH_AUG_PEAK, note="peak/off-peak billing starts"
)

PRICE_TABLE: dict[str, tuple[PriceEntry, ...]] = {
    # Legacy ids. The 2025-02-26..2025-09-05 off-peak discount (16:30–00:30 UTC) is not modelled:
    # §5.2 marks it as not re-verified. Retired 2026-07-24 15:59 UTC.
    "deepseek-chat": (
        PriceEntry(_LEGACY_V3_2025, Rates(0.07, 0.27, 1.10), note="V3"),
        PriceEntry(_V31, Rates(0.07, 0.56, 1.68), note="V3.1"),
        PriceEntry(_V32, Rates(0.028, 0.28, 0.42), note="V3.2-Exp, then V3.2"),
        PriceEntry(_V4, _V4_FLASH_LAUNCH, note="alias of deepseek-v4-flash (inferred)"),
    ),
    "deepseek-reasoner": (
        PriceEntry(_LEGACY_V3_2025, Rates(0.14, 0.55, 2.19), note="R1"),
        PriceEntry(_V31, Rates(0.07, 0.56, 1.68), note="V3.1 thinking"),
        PriceEntry(_V32, Rates(0.028, 0.28, 0.42), note="V3.2-Exp, then V3.2"),
        PriceEntry(_V4, _V4_FLASH_LAUNCH, note="alias of deepseek-v4-flash (inferred)"),
    ),
    "deepseek-v4-flash": (
        PriceEntry(_V4, _V4_FLASH_LAUNCH, note="V4 launch"),
        PriceEntry(_MID_2026, Rates(0.0028, 0.14, 0.28), note="date approximate"),
        _v4_flash_aug_entry,
        PriceEntry(_FLASH, _FLASH_RATES, _FLASH_PEAK, note="served and billed as deepseek-flash"),
    ),
    "deepseek-v4-flash-vision-exp": (
        # Appeared in Aug 2026; assumed to bill like deepseek-v4-flash until the Flash switch.
        PriceEntry(PEAK_PRICING_SINCE, _V4_FLASH_AUG, _V4_FLASH_AUG_PEAK, note="inferred"),
        PriceEntry(_FLASH, _FLASH_RATES, _FLASH_PEAK, note="served and billed as deepseek-flash"),
    ),
    "deepseek-flash": (_flash_entry,),
    "deepseek-v4-pro": (
        # List price at launch was 0.145 / 1.74 / 3.48; a 75% discount ran from launch and was extended.
        PriceEntry(_V4, Rates(0.03625, 0.435, 0.87), note="launch discount (75% off list)"),
        PriceEntry(_MID_2026, Rates(0.003625, 0.435, 0.87), note="date approximate"),
        PriceEntry(
            PEAK_PRICING_SINCE,
            Rates(0.022, 0.66, 1.98),
            Rates(0.044, 1.32, 3.96),
            note="V4-Pro-0813, peak/off-peak billing",
        ),
    ),
}

_prices: PriceTable = PRICE_TABLE
_user_prices = False  # set_prices was given a table: it prices answers of any dialect


class UsageLike(Protocol):
    """What ``estimate_cost`` reads; ``ds_magic.types.Usage`` fits."""

    @property
    def cache_hit_tokens(self) -> int: ...
    @property
    def cache_miss_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...


@dataclass(frozen=True)
class Cost:
    """An estimated cost in USD. ``peak`` is None when the price had no peak/off-peak split."""

    usd: float
    model: str
    peak: bool | None
    as_of: str

    def __str__(self) -> str:
        return format_usd(self.usd)


def format_usd(usd: float) -> str:
    """``"≈$0.0012"``: two significant digits below $1, cents above, ``"$0"`` for nothing."""
    if usd <= 0:
        return "$0"
    if usd < 0.00001:
        return "<$0.00001"
    if usd >= 1:
        return f"≈${usd:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(usd)))
    text = f"{usd:.{decimals}f}"
    # Trailing zeros add nothing ("0.0010" → "0.001"), but keep cents ("0.10").
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"≈${whole}.{frac}"


def _as_utc(when: datetime) -> datetime:
    # Naive datetimes are taken as UTC.
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def is_peak(when: datetime) -> bool:
    """True inside DeepSeek's peak windows (``PEAK_HOURS``): 01:00–04:00 and 06:00–10:00 UTC, Mon–Fri.

    Before 2026-08-16 16:00 UTC there was no peak pricing, so this is False. Simplifications: the
    zh-cn page also exempts Chinese public holidays, and weekends were only fully off-peak from
    2026-08-23; neither is modelled. Naive datetimes are taken as UTC.
    """
    t = _as_utc(when)
    hours = peak_hours_at(t)
    if hours is None or t.weekday() not in hours.weekdays:
        return False
    minute = t.hour * 60 + t.minute
    return any(start <= minute < end for start, end in hours.windows)


_peak_hours: tuple[PeakHours, ...] = PEAK_HOURS


def set_peak_hours(hours: Sequence[PeakHours] | None) -> None:
    """Replace the peak windows for this process (a change in DeepSeek's rules); None restores them."""
    global _peak_hours
    _peak_hours = PEAK_HOURS if hours is None else tuple(sorted(hours, key=lambda e: e.effective_from))


def get_peak_hours() -> tuple[PeakHours, ...]:
    """The peak windows in use: ``PEAK_HOURS`` unless :func:`set_peak_hours` replaced them."""
    return _peak_hours


def peak_hours_at(when: datetime) -> PeakHours | None:
    """The peak-hours entry in effect at ``when``; None before peak pricing began."""
    t = _as_utc(when)
    current: PeakHours | None = None
    for entry in _peak_hours:
        if entry.effective_from <= t:
            current = entry
    return current


def _flat_entries(model: str, spec: Mapping[str, float]) -> tuple[PriceEntry, ...]:
    try:
        rates = Rates(hit=float(spec["hit"]), miss=float(spec["miss"]), out=float(spec["out"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"price override for {model!r} needs numbers for 'hit', 'miss' and 'out' "
            f"(USD per 1M tokens), got {dict(spec)!r}"
        ) from exc
    if min(rates.hit, rates.miss, rates.out) < 0:
        raise ValueError(f"price override for {model!r} has a negative price: {dict(spec)!r}")
    return (PriceEntry(datetime.min.replace(tzinfo=timezone.utc), rates, as_of="custom"),)


def _merge(prices: PricesArg) -> PriceTable:
    """Models named in ``prices`` replace their built-in history; the others keep it."""
    merged: dict[str, Sequence[PriceEntry]] = dict(PRICE_TABLE)
    for model, value in prices.items():
        if isinstance(value, Mapping):
            merged[model] = _flat_entries(model, value)
        else:
            entries = tuple(value)
            if not all(isinstance(e, PriceEntry) for e in entries):
                raise TypeError(f"prices for {model!r} must be PriceEntry items or a hit/miss/out dict")
            merged[model] = tuple(sorted(entries, key=lambda e: e.effective_from))
    return merged


def set_prices(prices: PricesArg | None) -> None:
    """Override prices for this process; ``None`` restores the built-in table.

    Either a table ``{model: [PriceEntry, ...]}`` or flat prices per model,
    ``{"deepseek-flash": {"hit": 0.003, "miss": 0.15, "out": 0.60}}``.
    """
    global _prices, _user_prices
    _prices = PRICE_TABLE if prices is None else _merge(prices)
    _user_prices = prices is not None


def get_prices() -> PriceTable:
    """The table ``estimate_cost`` uses by default (built-in plus any ``set_prices`` override)."""
    return _prices


def _entry_at(entries: Sequence[PriceEntry], when: datetime) -> PriceEntry | None:
    current: PriceEntry | None = None
    for entry in sorted(entries, key=lambda e: e.effective_from):
        if entry.effective_from <= when:
            current = entry
    return current


def price_entry(model: str, when: datetime | None = None) -> PriceEntry | None:
    """The price entry of ``model`` in effect at ``when`` (default: now), from the current table."""
    entries = get_prices().get(model)
    if not entries:
        return None
    return _entry_at(entries, _as_utc(when) if when is not None else datetime.now(timezone.utc))


def estimate_cost(
    model: str,
    usage: UsageLike | None,
    when: datetime | None = None,
    *,
    prices: PricesArg | None = None,
) -> Cost | None:
    """Estimate the cost of one request that started at ``when`` (default: now).

    ``cost = hit × P_hit + miss × P_miss + completion × P_out``; reasoning tokens are inside
    ``completion_tokens``. Returns None for an unknown model, a time before its first price, or
    no usage. ``prices`` overrides like ``set_prices`` does, for this call only.
    """
    if usage is None:
        return None
    table = get_prices() if prices is None else _merge(prices)
    entries = table.get(model)
    if not entries:
        return None
    start = _as_utc(when) if when is not None else datetime.now(timezone.utc)
    entry = _entry_at(entries, start)
    if entry is None:
        return None
    peak: bool | None = None
    rates = entry.rates
    if entry.peak is not None:
        peak = is_peak(start)
        if peak:
            rates = entry.peak
    usd = (
        usage.cache_hit_tokens * rates.hit
        + usage.cache_miss_tokens * rates.miss
        + usage.completion_tokens * rates.out
    ) / 1_000_000  # prices are USD per 1M tokens
    return Cost(usd=usd, model=model, peak=peak, as_of=entry.as_of)


class Priced(Protocol):
    """What :func:`cost_of` reads; ``Response`` and ``RunRecord``-like objects fit."""

    @property
    def model(self) -> str: ...
    @property
    def usage(self) -> UsageLike | None: ...
    @property
    def created(self) -> float: ...
    @property
    def cached(self) -> bool: ...


def cost_of(answer: Priced, *, prices: PricesArg | None = None) -> Cost | None:
    """The estimated cost of one answer, priced at the time it was asked (``created``, epoch s).

    A cache hit made no request and costs exactly $0; None when the cost cannot be estimated (no
    usage, an unknown model). The one place the footer, the records and batch tables price answers.
    An answer from a server that speaks the OpenAI dialect (dialect.py) is not DeepSeek's: DeepSeek's
    prices do not apply, so it has no cost unless the user gave prices (``prices=``, ``set_prices``).
    """
    if answer.cached:
        return Cost(usd=0.0, model=answer.model, peak=None, as_of="cached")
    if prices is None and not _user_prices and answer_dialect(answer) == "openai":
        return None
    when = datetime.fromtimestamp(answer.created, timezone.utc)
    return estimate_cost(answer.model, answer.usage, when, prices=prices)
