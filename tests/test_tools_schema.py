"""Tools from functions (issue 16): the schema from signature, hints and docstring; registration errors;
the model's arguments as untrusted input."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

import ds_magic
from ds_magic import ToolError
from ds_magic.tools import MAX_TOOLS, as_tools, describe, make_tool, needs_beta


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Point:
    x: int
    y: float


class Options(TypedDict):
    deep: bool


def p_str(city: str) -> None: ...
def p_int(n: int) -> None: ...
def p_float(x: float) -> None: ...
def p_bool(flag: bool) -> None: ...
def p_literal(unit: Literal["C", "F"]) -> None: ...
def p_enum(color: Color) -> None: ...
def p_optional(note: str | None) -> None: ...
def p_list(xs: list[int]) -> None: ...
def p_dict(m: dict[str, float]) -> None: ...


SCHEMAS = [
    (p_str, {"type": "string"}),
    (p_int, {"type": "integer"}),
    (p_float, {"type": "number"}),
    (p_bool, {"type": "boolean"}),
    (p_literal, {"enum": ["C", "F"], "type": "string"}),
    (p_optional, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    (p_list, {"items": {"type": "integer"}, "type": "array"}),
    (p_dict, {"additionalProperties": {"type": "number"}, "type": "object"}),
]


@pytest.mark.parametrize(("fn", "expected"), SCHEMAS, ids=[f.__name__ for f, _ in SCHEMAS])
def test_type_to_schema_table(fn: Any, expected: dict[str, Any]) -> None:
    (t,) = as_tools([fn])
    (prop,) = t.parameters["properties"].values()
    assert prop == expected
    assert t.parameters["required"] == list(t.parameters["properties"])


def test_nested_types_go_to_defs() -> None:
    def place(p: Point, color: Color, opts: Options, more: list[Point]) -> None:
        """Place a point."""

    props = make_tool(place).parameters["properties"]
    params = make_tool(place).parameters
    assert props["p"]["type"] == "object" and props["p"]["required"] == ["x", "y"]
    assert props["color"]["enum"] == ["red", "blue"]
    assert props["opts"]["properties"] == {"deep": {"title": "Deep", "type": "boolean"}}
    assert props["more"] == {"items": {"$ref": "#/$defs/Point"}, "type": "array"}
    assert params["$defs"]["Point"]["required"] == ["x", "y"]


def test_decorator_keeps_the_function_and_builds_the_spec() -> None:
    @ds_magic.tool(safe=True)
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        """The weather in a city now.

        More text that is not the description.

        Args:
            city: The city's name,
                e.g. "Paris".
            unit (str): Celsius or Fahrenheit.

        Returns:
            A sentence.
        """
        return f"{city}: 20{unit}"

    assert get_weather("Paris") == "Paris: 20C"  # still callable as before
    t = get_weather.__ds_tool__  # type: ignore[attr-defined]
    assert t.safe and not t.strict and t.name == "get_weather"
    assert t.spec() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": 'The city\'s name, e.g. "Paris".'},
                    "unit": {
                        "enum": ["C", "F"],
                        "type": "string",
                        "description": "Celsius or Fahrenheit.",
                        "default": "C",
                    },
                },
                "required": ["city"],
            },
        },
    }
    assert json.loads(json.dumps(t.spec())) == t.spec()  # JSON all the way down


DOCSTRINGS = [
    (
        "google",
        "Sum.\n\nArgs:\n    a: first\n    b (int): second\n        continued\n",
        {"a": "first", "b": "second continued"},
    ),
    (
        "numpy",
        "Sum.\n\nParameters\n----------\na : int\n    first\nb : int\n    second\n\nReturns\n-------\nint\n",
        {"a": "first", "b": "second"},
    ),
    (
        "sphinx",
        "Sum.\n\n:param a: first\n:param int b: second\n   more\n:returns: x\n",
        {"a": "first", "b": "second more"},
    ),
    ("none", "Sum of two numbers.", {}),
    ("empty", "", {}),
]


@pytest.mark.parametrize(("style", "doc", "params"), DOCSTRINGS, ids=[d[0] for d in DOCSTRINGS])
def test_docstring_styles(style: str, doc: str, params: dict[str, str]) -> None:
    first, found = describe(doc)
    assert first == ("" if style == "empty" else doc.splitlines()[0])
    assert found == params


def no_hint(x):  # type: ignore[no-untyped-def]
    """No hint."""


def star_args(*values: int) -> None: ...
def star_kwargs(**options: str) -> None: ...


class Opaque:
    pass


def opaque(thing: Opaque) -> None: ...
def strict_default(a: int, b: int = 2) -> None: ...


class Query(BaseModel):
    text: str = Field(description="What to look for")
    limit: int = 10


class Thing:
    def method(self, n: int) -> int:
        """A method."""
        return n


REGISTRATION_ERRORS = [
    (lambda: as_tools([no_hint]), "tool no_hint: parameter x has no type hint — add one, e.g. x: str"),
    (lambda: as_tools([star_args]), "tool star_args: parameter *values cannot be described as JSON"),
    (lambda: as_tools([star_kwargs]), "tool star_kwargs: parameter **options cannot be described as JSON"),
    (lambda: as_tools([opaque]), "tool opaque: parameter thing: type Opaque cannot be described as JSON"),
    (lambda: as_tools([lambda x: x]), "tool name '<lambda>'"),
    (lambda: make_tool(p_int, name="has space"), "tool name 'has space' (p_int) is not 1 to 64 of"),
    (lambda: make_tool(p_int, name="x" * 65), "is not 1 to 64 of"),
    (lambda: as_tools([p_int, make_tool(p_str, name="p_int")]), "two tools are named 'p_int'"),
    (lambda: make_tool(strict_default, strict=True), "parameter b has a default, and a strict tool"),
    (lambda: as_tools([p_int, {"type": "function"}]), "tools mixes functions and raw"),
    (lambda: as_tools("p_int"), "tools must be a list of functions, not str"),
    (lambda: as_tools([Thing.method]), "parameter self: a method as defined in its class needs its instance"),
]


@pytest.mark.parametrize(("make", "message"), REGISTRATION_ERRORS)
def test_registration_errors_are_one_line_naming_the_parameter(make: Any, message: str) -> None:
    with pytest.raises(ToolError) as info:
        make()
    text = str(info.value)
    assert message in text and "\n" not in text


def test_a_bound_method_and_a_pydantic_model_parameter() -> None:
    def search(q: Query) -> list[str]:
        """Search."""
        return [q.text] * q.limit

    (bound,) = as_tools([Thing().method])
    assert bound.name == "method" and list(bound.parameters["properties"]) == ["n"]
    t = make_tool(search)
    q = t.parameters["properties"]["q"]
    assert q["properties"]["text"]["description"] == "What to look for" and q["required"] == ["text"]
    assert t.bind('{"q": {"text": "x", "limit": 2}}')[1]["q"] == Query(text="x", limit=2)


def test_a_hint_that_does_not_resolve_is_one_line() -> None:
    class Local:
        pass

    def f(x: Local) -> None: ...

    with pytest.raises(
        ToolError, match="its type hints cannot be read .NameError: name 'Local' is not defined"
    ):
        make_tool(f)


def test_the_decorator_fails_at_registration() -> None:
    with pytest.raises(ToolError, match="parameter x has no type hint"):

        @ds_magic.tool
        def bad(x):  # type: ignore[no-untyped-def]
            """Bad."""


def test_at_most_128_tools() -> None:
    many = [make_tool(p_int, name=f"t{i}") for i in range(MAX_TOOLS)]
    assert len(as_tools(many)) == MAX_TOOLS
    with pytest.raises(ToolError, match="129 tools: DeepSeek takes at most 128"):
        as_tools([*many, make_tool(p_int, name="one_more")])


def test_strict_schema_is_closed_and_goes_to_beta() -> None:
    def place(p: Point, label: str, more: list[Point]) -> None:
        """Place."""

    t = make_tool(place, strict=True)
    spec = t.spec()
    assert spec["function"]["strict"] is True
    params = spec["function"]["parameters"]
    assert params["additionalProperties"] is False and params["required"] == ["p", "label", "more"]
    assert params["properties"]["p"]["additionalProperties"] is False
    assert params["$defs"]["Point"]["additionalProperties"] is False
    assert needs_beta([spec]) and not needs_beta([make_tool(p_int).spec()])


def test_bind_validates_and_converts() -> None:
    def place(p: Point, n: int = 1, /) -> None: ...

    t = make_tool(place)
    assert t.bind('{"p": {"x": 1, "y": 2}, "n": "3"}') == ([Point(1, 2.0), 3], {})
    for bad, said in [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"q": 1, "p": {"x": 1, "y": 2}}', "unknown argument(s) q"),
        ("{}", "missing required argument(s): p"),
        ('{"p": {"x": "one", "y": 2}}', "argument p:"),
    ]:
        with pytest.raises(ValueError, match=None) as info:
            t.bind(bad)
        assert said in str(info.value)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda kids: (
                st.lists(kids, max_size=4)
                | st.dictionaries(st.sampled_from(["p", "n", "x", "y", "z"]), kids, max_size=4)
            ),
            max_leaves=12,
        ).map(json.dumps),
    )
)
def test_bind_of_any_model_text_is_arguments_or_one_value_error(text: str) -> None:
    """The model's arguments are untrusted: whatever arrives is bound or refused with a ValueError
    (sent back to the model as the call's error), never another exception."""

    def place(p: Point, n: int = 1) -> None: ...

    t = make_tool(place)
    try:
        args, kwargs = t.bind(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(kwargs["p"], Point) and not args
