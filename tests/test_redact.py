"""Streaming redaction: the same result as masking the whole text, whatever the chunking, holding back
only what could still become a match, and nothing leaking when a stream ends early.

The pure masker is tested with tables of awkward splits (every split point, one character at a time,
random chunkings); the end-to-end tests go through real sockets to the offline server.
"""

from __future__ import annotations

import random
import re

import pytest
from offline_helpers import KEY, wait_until

from ds_magic import Client, RedactRules
from ds_magic.cache import ResponseCache
from ds_magic.conversation import Conversation
from ds_magic.redact import MASK
from ds_magic.testing import Script

SECRET = "sk-" + "Ab3" * 9  # 30 characters
RULES = ["titan", "Project X", "re:sk-[A-Za-z0-9]{20,}", r"re:\b\d{3}-\d{2}-\d{4}\b", re.compile(r"abcd|ab")]

TEXTS = [
    f"The titan and titanium of Project X; key {SECRET} and 123-45-6789, abcd ab abc.",
    f"TITAN titan. sk-short {SECRET}! project x PROJECT X",
    "no secrets here at all, just text that is long enough to be chunked many ways",
    "abcdabab",
    f"{SECRET}",
    "titan",
    "tit",
    "",
]


def stream(rules: RedactRules, pieces: list[str], complete: bool = True) -> str:
    r = rules.stream()
    return "".join(r.feed(p) for p in pieces) + r.flush(complete)


@pytest.fixture(scope="module")
def rules() -> RedactRules:
    return RedactRules(RULES)


def test_whole_text_masking(rules):
    assert rules.mask_all(TEXTS[0]) == (
        f"The {MASK} and titanium of {MASK}; key {MASK} and {MASK}, {MASK} {MASK} {MASK}c."
    )
    assert rules.mask_all(TEXTS[1]) == f"{MASK} {MASK}. sk-short {MASK}! {MASK} {MASK}"


@pytest.mark.parametrize("text", TEXTS)
def test_every_split_point_gives_the_whole_text_result(rules, text):
    want = rules.mask_all(text)
    for i in range(len(text) + 1):
        assert stream(rules, [text[:i], text[i:]]) == want, i
    for i in range(len(text) + 1):
        for j in range(i, min(len(text), i + 12) + 1):
            assert stream(rules, [text[:i], text[i:j], text[j:]]) == want, (i, j)
    assert stream(rules, list(text)) == want  # one character at a time


def test_random_chunkings_and_random_texts(rules):
    rng = random.Random(20261125)
    alphabet = [
        "titan",
        "Titan",
        "tit",
        "an",
        "sk-",
        "Ab3",
        "x",
        " ",
        "Project",
        " X",
        "abc",
        "d",
        "-",
        "12",
        "3",
    ]
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        pieces, i = [], 0
        while i < len(text):
            j = i + rng.randint(1, 7)
            pieces.append(text[i:j])
            i = j
        assert stream(rules, pieces) == rules.mask_all(text), (text, pieces)


def test_holds_back_only_a_possible_beginning(rules):
    r = rules.stream()
    assert r.feed("Hello there, ") == "Hello there, "  # nothing here could start a match
    assert r.held == 0
    assert r.feed("the tit") == "the "  # "tit" could become "titan"
    assert r.held == 3
    assert r.feed("le is long") == "title is long"  # it did not: released at once
    assert r.held == 0
    assert r.feed(" sk-Ab3Ab3") == " "  # a key could be starting
    assert r.held == len("sk-Ab3Ab3")
    assert r.feed(" no") == "sk-Ab3Ab3 no"  # too short to be one: released
    out = r.feed(" " + SECRET)
    assert "Ab3Ab3Ab3" not in out  # the key is held until it cannot grow any more
    assert r.feed(".") == MASK + "."


def test_a_greedy_match_is_not_cut_short(rules):
    r = rules.stream()
    first = r.feed("key " + SECRET)  # complete already, but more key characters may follow
    rest = r.feed("ZZZZ end")
    assert first + rest + r.flush() == f"key {MASK} end"


@pytest.mark.parametrize("cut", range(1, len(SECRET)))
def test_nothing_of_a_secret_leaks_on_an_early_end(rules, cut):
    r = rules.stream()
    shown = r.feed("my key is " + SECRET[:cut]) + r.flush(complete=False)
    # Even "s" could have been the start of a key: the held tail is masked, never shown.
    assert shown == "my key is " + MASK
    r = rules.stream()
    whole = "my key is " + SECRET[:cut]  # a normal end: the same as masking the whole text
    assert r.feed(whole) + r.flush(complete=True) == rules.mask_all(whole)


def test_bad_rules_are_clear_errors():
    with pytest.raises(ValueError, match="can match empty text"):
        RedactRules(["re:x*"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        RedactRules(["re:(unclosed"])
    with pytest.raises(ValueError, match="empty or blank"):
        RedactRules(["  "])
    with pytest.raises(TypeError, match="redact rule"):
        RedactRules([42])  # type: ignore[list-item]


# ---------------------------------------------------------------- through the offline server


def test_client_filters_mask_the_streamed_and_stored_answer(srv, tmp_path):
    text = f"Here is the key: {SECRET}. The codename is Titan, not titanium."
    srv.enqueue(Script(text=text, reasoning=f"I must not say titan or {SECRET}.", tokens_per_second=400))
    cache = ResponseCache(tmp_path / "cache.sqlite")
    client = Client(api_key=KEY, base_url=srv.url, redact=["titan", "re:sk-[A-Za-z0-9]{20,}"], cache=cache)
    conv = Conversation("masked")
    resp = client.chat("tell me", conversation=conv)
    events = list(resp)
    streamed = "".join(e.text for e in events if e.kind == "answer")
    want = f"Here is the key: {MASK}. The codename is {MASK}, not titanium."
    assert streamed == resp.text == want
    assert SECRET not in resp.reasoning and "titan " not in resp.reasoning.lower()
    assert conv.turns[-1].content == want  # the history holds the masked text (stored before done)
    again = client.chat("tell me", conversation=Conversation("other"))
    assert again.text == want and again.cached  # and so does the cache
    assert SECRET not in (tmp_path / "cache.sqlite").read_bytes().decode("latin-1")


def test_cancel_mid_secret_shows_no_part_of_it(srv):
    text = "The key is " + SECRET + " and that is all."
    srv.enqueue(Script(text=text, reasoning="", tokens_per_second=40))
    client = Client(api_key=KEY, base_url=srv.url, redact=["re:sk-[A-Za-z0-9]{20,}"])
    resp = client.chat("key please")
    assert resp.masker is not None
    answer = resp.masker.answer
    # part of the key has arrived and is held back
    assert wait_until(lambda: answer.held >= 8, 10)
    resp.cancel()
    resp.join(5)
    assert resp.status == "cancelled"
    assert srv.wait_for_disconnect(2) is not None
    assert "Ab3" not in resp.text and "sk-" not in resp.text
    assert resp.text == "The key is " + MASK


def test_no_filter_no_masking(srv):
    text = f"titan {SECRET}"
    srv.enqueue(Script(text=text, reasoning=""))
    assert Client(api_key=KEY, base_url=srv.url).chat("x").text == text


def test_magic_redact_setting_masks_the_cell_output_and_history(srv, kernel_factory):
    k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url})
    # (In a %config line IPython would expand {20,} as Python first; set the trait directly.)
    setting = (
        "get_ipython().magics_manager.registry['DeepSeekMagics'].redact = ['titan', 're:sk-[A-Za-z0-9]{20,}']"
    )
    assert k.run(setting, timeout=10).status == "ok"
    srv.enqueue(Script(text=f"Codename Titan uses {SECRET} today.", reasoning="", tokens_per_second=200))
    mark = k.mark()
    assert k.run("%%deepseek -o ans\nwhat is the codename?", timeout=30).status == "ok"
    published = str([m["content"] for m in k.all_iopub[mark:]])
    assert SECRET not in published and "Titan" not in published
    assert MASK in published
    out = k.run("print(ans.text)", timeout=10).stdout
    assert out.strip() == f"Codename {MASK} uses {MASK} today."
    history = k.run("%deepseek history", timeout=10).stdout
    assert SECRET not in history and "Titan" not in history
