"""batch(schema=...) through the offline server (real sockets): JSON mode with the schema in the system
prompt, invalid answers retried once with the error fed back and then recorded on their item, and
result.table() lined up with the input; the answer parser's tables and property test."""

from __future__ import annotations

import dataclasses
import enum
import json
import typing
from typing import Literal

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from offline_helpers import KEY

import ds_magic
from ds_magic import Client, StructuredOutputError
from ds_magic.structured import as_schema, example_value, parse_answer
from ds_magic.testing import Script


class Label(pydantic.BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float


@dataclasses.dataclass
class Topic:
    topic: str
    pages: int


LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["spam", "ham"]}, "score": {"type": "integer", "minimum": 0}},
    "required": ["label", "score"],
}


def client(srv) -> Client:
    return Client(api_key=KEY, base_url=srv.url)


def run(srv, items, schema, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("thinking", False)
    return ds_magic.batch("Label item {item}.", items, client=client(srv), schema=schema, **kw).wait(30)


def test_invalid_json_is_retried_with_the_error_then_recorded_on_its_item(srv):
    srv.enqueue(
        # item 1: not JSON, then a valid answer on the retry
        Script(text="Sure! The label is positive.", match=r"item 1\."),
        Script(text='{"label": "positive", "confidence": 0.9}', match=r"item 1\."),
        # item 2: wrong twice (a bad enum value, then not JSON): its error is recorded
        Script(text='{"label": "great", "confidence": 0.5}', match=r"item 2\."),
        Script(text='{"label": ', match=r"item 2\."),
    )
    result = run(srv, [0, 1, 2, 3], Label, concurrency=4)

    assert len(srv.requests) == 6  # four items, two retries
    assert srv.queued == 0
    first = srv.requests[0].body
    assert first["response_format"] == {"type": "json_object"}
    system = first["messages"][0]
    assert system["role"] == "system" and "JSON Schema" in system["content"]
    assert json.dumps(Label.model_json_schema(), ensure_ascii=False) in system["content"]

    retries = [r.body["messages"] for r in srv.requests if len(r.body["messages"]) == 4]
    assert len(retries) == 2
    by_item = {m[1]["content"]: m for m in retries}
    one = by_item["Label item 1."]
    assert [m["role"] for m in one] == ["system", "user", "assistant", "user"]
    assert one[2]["content"] == "Sure! The label is positive."
    assert "not valid JSON" in one[3]["content"]
    two = by_item["Label item 2."]
    assert "label: Input should be 'positive', 'negative' or 'neutral'" in two[3]["content"]

    assert result.values[1] == Label(label="positive", confidence=0.9)
    assert result.values[2] is None
    assert isinstance(result.values[0], Label) and isinstance(result.values[3], Label)
    assert result.failed == [2]

    rows = result.table(as_dataframe=False)
    assert list(rows[0]) == [
        "label",
        "confidence",
        "status",
        "error",
        "tokens",
        "cost",
        "latency",
        "attempts",
    ]
    assert [r["status"] for r in rows] == ["ok", "ok", "error", "ok"]
    assert [r["attempts"] for r in rows] == [1, 2, 2, 1]
    assert rows[1]["label"] == "positive" and rows[2]["label"] is None
    assert "after 2 tries: the answer is not valid JSON" in rows[2]["error"]
    assert all(r["cost"] is not None and r["latency"] is not None for r in rows)


def test_item_error_carries_the_problem(srv):
    srv.enqueue(Script(text="[1, 2]", match=r"item 0\."), Script(text='"just a string"', match=r"item 0\."))
    result = run(srv, [0], Label)
    err = result.structured.errors(result.responses)[0]
    assert isinstance(err, StructuredOutputError)
    assert err.problem == "the answer is a string, not a JSON object"
    assert err.attempts == 2 and err.hint


def test_tokens_of_both_attempts_are_counted(srv):
    bad, good = "x " * 30, '{"label": "ham", "score": 3}'
    srv.enqueue(Script(text=bad, match=r"item 0\."), Script(text=good, match=r"item 0\."))
    srv.enqueue(Script(text=good, match=r"item 1\."))
    result = run(srv, [0, 1], LABEL_SCHEMA, concurrency=1)
    rows = result.table(as_dataframe=False)
    usage = [r.usage.completion_tokens for r in (result[1],)]
    assert rows[1]["tokens"] == usage[0]  # one attempt
    assert rows[0]["attempts"] == 2
    assert rows[0]["tokens"] == rows[1]["tokens"] + len(ds_magic.testing.split_tokens(bad))


def test_table_joins_the_input_dataframe_on_its_index(srv):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"text": ["a", "b", "c"]}, index=["r10", "r20", "r30"])
    srv.enqueue(Script(text='{"label": "ham", "score": 1}', match="text b"))
    result = ds_magic.batch(
        "Is this spam? text {text}.",
        df,
        client=client(srv),
        schema=LABEL_SCHEMA,
        progress=False,
        thinking=False,
    ).wait(30)
    joined = df.join(result.table())
    assert list(joined.index) == ["r10", "r20", "r30"]
    assert joined.loc["r20", "label"] == "ham" and joined.loc["r20", "score"] == 1
    assert set(joined["label"]) <= {"spam", "ham"}
    assert list(joined.columns[:3]) == ["text", "label", "score"]


def test_a_series_keeps_its_index(srv):
    pd = pytest.importorskip("pandas")
    s = pd.Series(["x", "y"], index=[7, 9])
    table = run(srv, s, Topic).table()
    assert list(table.index) == [7, 9]
    assert list(table.columns[:2]) == ["topic", "pages"]


def test_dataclass_schema_gives_dataclass_instances(srv):
    srv.enqueue(Script(text='{"topic": "maths", "pages": "12"}'))
    result = run(srv, [0], Topic)
    assert result.values == [Topic("maths", 12)]  # pydantic's lax mode: "12" is 12


def test_json_schema_dict_errors_name_the_field(srv):
    srv.enqueue(
        Script(text='{"label": "spam", "score": -1}', match=r"item 0\."),
        Script(text='{"label": "eggs", "score": 2}', match=r"item 0\."),
    )
    rows = run(srv, [0], LABEL_SCHEMA).table(as_dataframe=False)
    assert rows[0]["status"] == "error"
    assert "label: must be one of ['spam', 'ham']" in rows[0]["error"]
    retry = srv.requests[1].body["messages"][-1]["content"]
    assert "score: must be bigger than or equal to 0" in retry


def test_dict_schema_takes_any_object_and_its_keys_become_columns(srv):
    srv.enqueue(
        Script(text='{"a": 1}', match=r"item 0\."), Script(text='{"b": 2, "a": 3}', match=r"item 1\.")
    )
    rows = run(srv, [0, 1], dict, concurrency=1).table(as_dataframe=False)
    assert [(r["a"], r["b"]) for r in rows] == [(1, None), (3, 2)]


def test_the_offline_server_answers_the_shape_of_the_schema(srv):
    result = run(srv, list(range(6)), LABEL_SCHEMA)
    assert result.failed == []
    assert {v["label"] for v in result.values} <= {"spam", "ham"}


def test_system_prompt_keeps_the_users_own(srv):
    run(srv, [0], Label, system="You label product reviews.")
    content = srv.requests[0].body["messages"][0]["content"]
    assert content.startswith("You label product reviews.\n\n")
    assert "json" in content.lower()  # JSON mode needs the word (deepseek-api.md §4.5)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, "must describe a JSON object"),
        (
            {"type": "object", "properties": {"a": {"type": "nonsense"}}},
            "is not a valid JSON Schema: Unknown type",
        ),
        (42, "schema= takes dict"),
        (list, "schema= takes dict"),
    ],
)
def test_bad_schemas_fail_before_anything_is_sent(srv, schema, message):
    with pytest.raises((TypeError, ValueError), match=message):
        ds_magic.batch("{item}", [1], client=client(srv), schema=schema, progress=False)
    assert srv.requests == []


def test_schema_and_response_format_are_one_or_the_other(srv):
    with pytest.raises(TypeError, match="schema= sets JSON mode itself"):
        ds_magic.batch("{item}", [1], client=client(srv), schema=dict, response_format="json_object")


def test_values_needs_a_schema(srv):
    result = ds_magic.batch("{item}", [1], client=client(srv), progress=False).wait(30)
    with pytest.raises(AttributeError, match="schema="):
        _ = result.values


# ----------------------------------------------------------------- the parser, as tables
LABEL = as_schema(Label)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "the answer is empty"),
        ("   \n", "the answer is empty"),
        ("positive", "the answer is not valid JSON (Expecting value at line 1 column 1)"),
        ('{"label": "positive",', "the answer is not valid JSON"),
        ("[]", "the answer is a list, not a JSON object"),
        ("null", "the answer is null, not a JSON object"),
        ('{"label": "positive"}', "confidence: Field required"),
        ('{"label": 1, "confidence": "x"}', "label: Input should be 'positive', 'negative' or 'neutral'"),
    ],
)
def test_parse_answer_problems(text, problem):
    with pytest.raises(ValueError) as info:
        parse_answer(text, LABEL)
    assert problem in str(info.value)


def test_parse_answer_accepts_a_fenced_object():
    value = parse_answer('```json\n{"label": "neutral", "confidence": 1}\n```', LABEL)
    assert value == Label(label="neutral", confidence=1.0)


def test_many_errors_are_capped():
    Five = pydantic.create_model("Five", **{k: (int, ...) for k in "abcde"})
    with pytest.raises(ValueError, match="^a: Input should be a valid integer.*; and 2 more$"):
        parse_answer(json.dumps({k: "x" for k in "abcde"}), as_schema(Five))


def test_a_missing_field_of_a_json_schema_is_named():
    with pytest.raises(ValueError, match=r"^\(the object\): must contain \['score'\] properties$"):
        parse_answer('{"label": "spam"}', as_schema(LABEL_SCHEMA))


def test_example_values_are_valid_against_their_schemas():
    for spec in (Label, Topic, LABEL_SCHEMA):
        schema = as_schema(spec)
        schema.validate(example_value(schema.json_schema))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_answer_on_any_text_returns_an_object_or_says_why(text):
    try:
        value = parse_answer(text, as_schema(dict))
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(value, dict)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_parse_answer_round_trips_any_object(obj):
    assert parse_answer(json.dumps(obj), as_schema(dict)) == obj
    try:
        LABEL.validate(obj)
    except ValueError as exc:
        assert str(exc)


def test_an_answer_cut_off_at_max_tokens_says_so(srv):
    srv.enqueue(*[Script(text='{"label": "spam", "score": 12345678}', match=r"item 0\.")] * 2)
    rows = run(srv, [0], LABEL_SCHEMA, max_tokens=4).table(as_dataframe=False)
    assert rows[0]["status"] == "error"
    assert "(the answer was cut off at max_tokens)" in rows[0]["error"]
    assert srv.requests[1].body["messages"][-1]["content"].count("cut off at max_tokens") == 1


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Part(pydantic.BaseModel):
    name: str
    qty: int = pydantic.Field(ge=1)


class Order(pydantic.BaseModel):
    color: Color
    parts: list[Part]
    note: typing.Optional[str] = None  # noqa: UP045 (the Optional spelling is what users write too)


def test_nested_models_enums_and_optionals_from_the_offline_server(srv):
    # $defs / $ref, an enum class, anyOf with null: the stand-in's shaped answers pass pydantic
    result = run(srv, [0, 1, 2], Order)
    assert result.failed == []
    assert all(isinstance(v, Order) and v.parts[0].qty >= 1 for v in result.values)
    rows = result.table(as_dataframe=False)
    assert {r["color"] for r in rows} <= {"red", "blue"}  # what the answer said, not Color.RED
    assert rows[0]["parts"] == [{"name": "name", "qty": 1}]
