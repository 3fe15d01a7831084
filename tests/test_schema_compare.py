"""ds_magic.compare through the offline server (real sockets): two variants with a score, side by side,
on one bounded schedule; summaries, the plot, and the errors that stop it before anything is sent."""

from __future__ import annotations

from typing import Literal

import pydantic
import pytest
from offline_helpers import KEY, wait_until

import ds_magic
from ds_magic import Client, Comparison, SecretInPromptError
from ds_magic.comparison import SUMMARY_COLUMNS
from ds_magic.testing import Script, split_tokens


class Sentiment(pydantic.BaseModel):
    label: Literal["positive", "negative"]


REVIEWS = [
    {"text": "great phone", "label": "positive"},
    {"text": "broke in a day", "label": "negative"},
    {"text": "love it", "label": "positive"},
    {"text": "waste of money", "label": "negative"},
]


def client(srv) -> Client:
    return Client(api_key=KEY, base_url=srv.url)


def test_two_variants_with_a_score_function(srv):
    # The "careful" variant (its own system prompt, on pro) answers right; "quick" (flash) is
    # right on the first two reviews only. Script.match tells the variants apart by what was sent.
    for r in REVIEWS:
        srv.enqueue(Script(text=r["label"], match=rf"(?s)^deepseek-v4-pro\nBe careful.*{r['text']}"))
    for r, said in zip(REVIEWS, ["positive", "negative", "negative", "positive"], strict=True):
        srv.enqueue(Script(text=said, match=rf"(?s)^deepseek-flash\n.*{r['text']}"))
    cmp = ds_magic.compare(
        "Positive or negative? {text}",
        REVIEWS,
        variants={
            "quick": {"model": "deepseek-flash", "temperature": 0.2},
            "careful": {"model": "deepseek-v4-pro", "system": "Be careful."},
        },
        score=lambda item, answer: float(answer.strip() == item["label"]),
        client=client(srv),
        concurrency=3,
        progress=False,
        thinking=False,
    ).wait(30)
    assert isinstance(cmp, Comparison)
    assert srv.queued == 0 and len(srv.requests) == 8
    assert srv.max_active <= 3  # every pair on the one bounded schedule

    sent = {(r.body["model"], r.body["messages"][-1]["content"]): r.body for r in srv.requests}
    quick = sent[("deepseek-flash", "Positive or negative? love it")]
    assert quick["temperature"] == 0.2 and quick["messages"][0]["role"] == "user"
    careful = sent[("deepseek-v4-pro", "Positive or negative? love it")]
    assert careful["messages"][0] == {"role": "system", "content": "Be careful."}
    assert "temperature" not in careful

    rows = cmp.table(as_dataframe=False)
    assert [r["quick"] for r in rows] == ["positive", "negative", "negative", "positive"]
    assert [r["careful"] for r in rows] == [r["label"] for r in REVIEWS]
    assert [r["quick score"] for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert [r["careful score"] for r in rows] == [1.0] * 4
    assert rows[0]["input"] == REVIEWS[0]
    wide = cmp.table(metrics=True, as_dataframe=False)
    assert list(wide[0])[5:] == [
        f"{v} {m}" for m in ("latency", "tokens", "cost") for v in ("quick", "careful")
    ]
    assert wide[0]["quick tokens"] == len(split_tokens("positive")) and wide[0]["careful cost"] > 0

    quick_s, careful_s = cmp.summaries()
    assert (quick_s.variant, quick_s.model, quick_s.items, quick_s.errors) == (
        "quick",
        "deepseek-flash",
        4,
        0,
    )
    assert quick_s.score == 0.5 and careful_s.score == 1.0
    said = ["positive", "negative", "negative", "positive"]
    assert quick_s.tokens == sum(len(split_tokens(t)) for t in said)
    assert careful_s.tokens == sum(len(split_tokens(r["label"])) for r in REVIEWS)
    assert quick_s.cost is not None and careful_s.cost is not None and careful_s.cost > quick_s.cost
    assert quick_s.latency is not None and quick_s.latency > 0
    assert "quick: score 0.50" in repr(cmp) and "careful: score 1.00" in repr(cmp)


def test_a_schema_field_as_the_score_is_accuracy_against_the_items_field(srv):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(REVIEWS, index=["a", "b", "c", "d"])
    for r in REVIEWS:  # "pro" always right; "flash" always says positive
        srv.enqueue(
            Script(text=f'{{"label": "{r["label"]}"}}', match=rf"(?s)^deepseek-v4-pro\n.*{r['text']}")
        )
        srv.enqueue(Script(text='{"label": "positive"}', match=rf"(?s)^deepseek-flash\n.*{r['text']}"))
    cmp = ds_magic.compare(
        "Label: {text}",
        df,
        variants={"flash": {"model": "deepseek-flash"}, "pro": {"model": "deepseek-v4-pro"}},
        schema=Sentiment,
        score="label",
        client=client(srv),
        progress=False,
    ).wait(30)
    table = cmp.table()
    assert list(table.index) == ["a", "b", "c", "d"]
    assert list(table["flash"]) == ["positive"] * 4
    assert list(table["pro"]) == list(df["label"])
    summary = cmp.summary()
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary["score"]) == [0.5, 1.0]
    assert all(r.body["response_format"] == {"type": "json_object"} for r in srv.requests)


def test_template_variants_and_an_invalid_answer_in_one_variant(srv):
    srv.enqueue(Script(text="not json", match="(?s)Briefly"), Script(text="still not", match="(?s)Briefly"))
    cmp = ds_magic.compare(
        "Label: {item}",
        ["x"],
        variants={"plain": {}, "brief": {"template": "Briefly, label: {item}"}},
        schema=dict,
        client=client(srv),
        progress=False,
    ).wait(30)
    plain, brief = cmp.cells()[0]
    assert plain.status == "ok" and brief.status == "error"
    assert "after 2 tries" in (brief.error or "")
    assert cmp.summaries()[1].errors == 1
    assert cmp.table(as_dataframe=False)[0]["brief"].startswith("[error] the answer does not match")
    assert len(srv.requests) == 3  # the brief one retried once


def test_plot_shows_cost_quality_and_latency(srv):
    pytest.importorskip("matplotlib")
    cmp = ds_magic.compare(
        "{item}",
        ["a", "b"],
        variants={"one": {"temperature": 0}, "two": {"temperature": 1}},
        score=lambda item, answer: len(answer),
        client=client(srv),
        progress=False,
    ).wait(30)
    fig = cmp.plot()
    axes = fig.get_axes()
    assert [ax.get_xlabel() for ax in axes] == ["cost per item (USD)", "latency (s)"]
    assert {t.get_text() for t in axes[0].texts} == {"one", "two"}
    no_score = ds_magic.compare(
        "{item}", ["a"], variants={"one": {}, "two": {}}, client=client(srv), progress=False
    ).wait(30)
    (ax,) = no_score.plot().get_axes()
    assert ax.get_ylabel() == "latency (s)"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": {}}, "non-empty dict"),
        ({"variants": {"a": {"modle": "x"}}}, "unknown setting 'modle'"),
        ({"variants": {"a": "deepseek-flash"}}, "must be a dict of settings"),
        ({"variants": {"a": {"temperature": 9}}}, "variant 'a': "),
        ({"variants": {"a": {}}, "score": "label"}, "names a schema field"),
        ({"variants": {"a": {}}, "score": "x", "schema": Sentiment}, "names a schema field"),
        ({"variants": {"a": {}}, "score": 3}, "score= must be a function"),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(srv, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ds_magic.compare("{item}", ["a"], client=client(srv), progress=False, **kwargs)
    assert srv.requests == []


def test_a_secret_in_a_variants_system_prompt_is_not_sent(srv):
    with pytest.raises(SecretInPromptError, match="Not sent"):
        ds_magic.compare(
            "{item}",
            ["a", "b"],
            variants={"ok": {}, "leaky": {"system": "use sk-" + "a1b2c3d4" * 4}},
            client=client(srv),
            progress=False,
        )
    assert srv.requests == []


def test_cancel_keeps_what_finished(srv):
    srv.enqueue(*[Script(text="slow", ttft=60, match="(?s)item-1")] * 2)
    cmp = ds_magic.compare(
        "{item}",
        ["item-0", "item-1"],
        variants={"a": {}, "b": {}},
        client=client(srv),
        concurrency=4,
        progress=False,
    )
    # item 0 answered in both variants, item 1 in flight in both: then Cancel
    assert wait_until(lambda: cmp.batch.progress.done == 2 and srv.active == 2, 30)
    cmp.cancel()
    cmp.wait(30)
    assert [[c.status for c in row] for row in cmp.cells()] == [["ok", "ok"], ["cancelled", "cancelled"]]
    assert all(s.items == 2 and s.errors == 1 for s in cmp.summaries())
