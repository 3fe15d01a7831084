"""Retry policy arithmetic, the error tree, and the public surface."""

from __future__ import annotations

import email.utils

import pytest

import ds_magic
from ds_magic import errors
from ds_magic.retry import RetryPolicy, is_retryable_status, parse_retry_after

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({}, None),
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "1_0"}, None),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": "Fri, 29 Sep 100000 16:26:57 GMT"}, None),
        ({"X-RateLimit-Reset": "12"}, 12.0),
        ({"X-RateLimit-Reset": str(int(NOW + 40))}, 40.0),
        ({"x-ratelimit-reset": "1m30s"}, 90.0),
        ({"x-ratelimit-reset": "250ms"}, 0.25),
        ({"x-ratelimit-reset": "soon"}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    got = parse_retry_after(headers, NOW)
    assert got == (pytest.approx(expected, abs=1) if expected is not None else None)


def test_backoff_doubles_from_one_second_and_caps_at_thirty():
    p = RetryPolicy(random=lambda: 0.0)
    assert [p.backoff(k) for k in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    jittered = RetryPolicy(random=lambda: 0.999)
    assert 0.75 < jittered.backoff(0) <= 1.0


def test_delay_prefers_server_value_and_refuses_long_waits():
    p = RetryPolicy(random=lambda: 0.0, clock=lambda: NOW)
    assert p.delay(0, {"Retry-After": "5"}) == 5
    assert p.delay(1, {"Retry-After": "120"}) == 120
    assert p.delay(0, {"Retry-After": "121"}) is None
    assert p.delay(2, {"Retry-After": "0"}) == 4  # zero or negative: fall back to backoff
    assert p.delay(0, {"Retry-After": "bogus"}) == 1


def test_retryable_statuses():
    assert [s for s in (400, 401, 402, 408, 409, 422, 429, 500, 502, 503) if is_retryable_status(s)] == [
        408,
        409,
        429,
        500,
        502,
        503,
    ]


def test_max_retries_must_be_sane():
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_error_tree():
    E = errors
    assert all(
        issubclass(c, E.DeepSeekError)
        for c in (
            E.MissingAPIKeyError,
            E.APIStatusError,
            E.APITimeoutError,
            E.APIConnectionError,
            E.StreamInterruptedError,
            E.StreamDecodeError,
            E.StreamError,
        )
    )
    assert all(
        issubclass(c, E.APIStatusError)
        for c in (
            E.BadRequestError,
            E.AuthenticationError,
            E.InsufficientBalanceError,
            E.RateLimitError,
            E.ServerError,
        )
    )
    assert not issubclass(E.DeepSeekError, (KeyboardInterrupt, SystemExit))


def test_messages_are_one_line_and_never_hold_keys():
    key = "sk-abcdef0123456789abcdef0123456789"
    err = errors.AuthenticationError(
        401, f"Authentication Fails, Your api key: {key} is invalid\nsecond line"
    )
    text = str(err)
    assert "\n" not in text and key not in text and "DEEPSEEK_API_KEY" in text
    assert key not in str(errors.APIConnectionError(f"Bearer {key}", "http://x"))


def test_timeout_message_mentions_partial():
    e = errors.APITimeoutError("idle", 60, partial="abc")
    assert "stalled" in str(e) and "partial" in str(e) and e.partial == "abc"


def test_all_exported():
    for name in ds_magic.__all__:
        assert getattr(ds_magic, name) is not None, name
    with pytest.raises(AttributeError):
        ds_magic.NoSuchThing  # noqa: B018
