"""What a batch will cost and how long it will take, before it is sent.

::

    result = ds_magic.batch("Label: {item}", rows, estimate=True)   # not started; shows the estimate
    result.estimate(sample=5)                                      # again, from a bigger sample
    result.start()

Prompt tokens are counted with tokens.py's rule of thumb (deepseek-api.md §4.8: no tokenizer to
download). Output tokens are projected from a small sample of real answers (the first items, sent
now and kept: a persisted run does not send them again), or, with ``sample=0``, from
``max_tokens`` as an upper bound. Costs come from the dated price table (pricing.py), at both the
peak and the off-peak rates of the entry in effect, with its effective date. Every input token is
priced as a cache miss: an upper bound, since a shared system prompt is often a cache hit
(deepseek-api.md §4.6). The time is the sample's time per answer times the rounds the items take
at the batch's concurrency, capped by the account's (deepseek-api.md §5.1 lists 2,500 for
deepseek-flash and 500 for deepseek-v4-pro).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .pricing import PriceEntry, Rates, format_usd, price_entry
from .response import Response
from .tokens import estimate_message_tokens

__all__ = ["Estimate", "ACCOUNT_CONCURRENCY", "project", "messages_of"]

#: Requests in flight an account may have, per model (deepseek-api.md §5.1, "Concurrency").
ACCOUNT_CONCURRENCY: Mapping[str, int] = {"deepseek-flash": 2500, "deepseek-v4-pro": 500}


def _fmt_tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    return f"{n:,}"


def _fmt_time(s: float) -> str:
    if s < 90:
        return f"{s:.0f}s"
    if s < 5400:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


@dataclass(frozen=True)
class Estimate:
    """A projection of a batch; ``str()`` is the text a user reads."""

    model: str
    items: int  # items to send (those a persisted run already has are not counted)
    prompt_tokens: int
    output_tokens: int
    output_from: str  # how output_tokens was projected
    offpeak_usd: float | None  # None: the model is not in the price table
    peak_usd: float | None
    prices_from: datetime | None  # effective date of the price entry used
    prices_as_of: str | None
    concurrency: int
    seconds: float | None  # None without a sample to time
    sample: int = 0  # answers sent as the sample
    sample_usd: float = 0.0

    def __str__(self) -> str:
        head = f"Estimate for {self.items:,} items on {self.model}"
        if self.sample:
            head += f" ({self.sample} sent as a sample, {format_usd(self.sample_usd)})"
        lines = [
            head + ":",
            f"  prompt ≈ {_fmt_tokens(self.prompt_tokens)} tokens (all priced as cache misses: an upper bound)",
            f"  output ≈ {_fmt_tokens(self.output_tokens)} tokens, {self.output_from}",
        ]
        if self.offpeak_usd is None or self.peak_usd is None or self.prices_from is None:
            lines.append(f"  cost: unknown ({self.model} is not in the price table)")
        elif self.offpeak_usd == self.peak_usd:
            lines.append(
                f"  cost {format_usd(self.offpeak_usd)} (one price, from {self.prices_from:%Y-%m-%d}; "
                f"table checked {self.prices_as_of}; the bill is authoritative)"
            )
        else:
            lines.append(
                f"  cost {format_usd(self.offpeak_usd)} off-peak, {format_usd(self.peak_usd)} peak "
                f"(prices from {self.prices_from:%Y-%m-%d}; table checked {self.prices_as_of}; "
                "the bill is authoritative)"
            )
        if self.seconds is None:
            lines.append(f"  time: unknown without a sample (concurrency {self.concurrency})")
        else:
            lines.append(f"  time ≈ {_fmt_time(self.seconds)} at concurrency {self.concurrency}")
        return "\n".join(lines)


def messages_of(prompt: str | Sequence[Mapping[str, Any]], system: str | None) -> list[Mapping[str, Any]]:
    """The wire messages an item is sent as (the system prompt first, as client.chat puts it)."""
    messages: list[Mapping[str, Any]] = [{"role": "system", "content": system}] if system else []
    if isinstance(prompt, str):
        return [*messages, {"role": "user", "content": prompt}]
    return [*messages, *prompt]


def _usd(rates: Rates, prompt_tokens: int, output_tokens: int) -> float:
    return (prompt_tokens * rates.miss + output_tokens * rates.out) / 1_000_000  # USD per 1M tokens


def project(
    prompts: Sequence[str | Sequence[Mapping[str, Any]]],
    *,
    model: str,
    system: str | None,
    max_tokens: int | None,
    sample: Sequence[Response],
    sample_usd: float,
    concurrency: int,
    account_concurrency: int | None = None,
    when: datetime | None = None,
) -> Estimate:
    """The estimate for sending ``prompts``, projected from the finished ``sample`` or ``max_tokens``."""
    prompt_tokens = sum(estimate_message_tokens(messages_of(p, system)) for p in prompts)
    ok = [r for r in sample if r.status == "ok"]
    seconds_each: float | None = None
    if ok:
        outs = [r.usage.completion_tokens if r.usage is not None else r.timing.tokens for r in ok]
        per_item = statistics.fmean(outs)
        if max_tokens is not None:
            per_item = min(per_item, max_tokens)
        output_from = f"from a sample of {len(ok)} answers (mean {per_item:.0f} tokens each)"
        totals = [r.timing.total for r in ok if r.timing.total is not None]
        seconds_each = statistics.fmean(totals) if totals else None
    elif max_tokens is not None:
        per_item = max_tokens
        output_from = f"at most: max_tokens={max_tokens} each"
    else:
        raise ValueError(
            "an estimate needs a sample of answers or max_tokens= to project the output: "
            "pass sample=N (N > 0, those items are sent now) or max_tokens=..."
        )
    output_tokens = math.ceil(per_item * len(prompts))
    cap = account_concurrency or ACCOUNT_CONCURRENCY.get(model)
    c = min(concurrency, cap) if cap else concurrency
    entry: PriceEntry | None = price_entry(model, when)
    offpeak = peak = None
    if entry is not None:
        offpeak = _usd(entry.rates, prompt_tokens, output_tokens)
        peak = _usd(entry.peak or entry.rates, prompt_tokens, output_tokens)
    return Estimate(
        model=model,
        items=len(prompts),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        output_from=output_from,
        offpeak_usd=offpeak,
        peak_usd=peak,
        prices_from=entry.effective_from if entry is not None else None,
        prices_as_of=entry.as_of if entry is not None else None,
        concurrency=c,
        seconds=math.ceil(len(prompts) / c) * seconds_each if seconds_each is not None else None,
        sample=len(sample),
        sample_usd=sample_usd,
    )
