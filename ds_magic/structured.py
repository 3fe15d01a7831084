"""Structured answers: a schema becomes JSON mode with the schema in the system prompt, and each answer
is parsed and validated against it.

DeepSeek has JSON mode (``response_format: {"type": "json_object"}``) but no schema enforcement
(deepseek-api.md §4.5: ``json_schema`` is not supported, and the prompt must ask for JSON with an
example). So the schema is stated in the system prompt, the answer is parsed and validated here, and
a wrong answer is sent back once with the validation error (structured_result.py does the retry).

``schema=`` takes:

- ``dict``: any JSON object;
- a JSON Schema (a dict) whose top level is an object, validated with ``fastjsonschema``;
- a pydantic model class (validated by pydantic itself: the value is a model instance);
- a dataclass (pydantic reads its fields and types and builds the instance).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import json_kind

__all__ = ["Schema", "as_schema", "parse_answer", "example_value", "retry_prompt", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'ds_magic[structured]'"
# Errors named in one message (the retry prompt, the table): enough to fix, short enough to read.
_MAX_ERRORS = 3
# A ```json fence around the whole answer (some models add one even in JSON mode).
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)


def _need(module: str, why: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{why} needs {module}: {INSTALL_HINT}") from None


class Schema:
    """One ``schema=`` value made uniform: its JSON Schema, its top-level fields, and ``validate``."""

    def __init__(
        self,
        name: str,
        json_schema: dict[str, Any],
        check: Callable[[Any], Any],
        row: Callable[[Any], dict[str, Any]],
    ) -> None:
        self.name = name
        self.json_schema = json_schema
        props = json_schema.get("properties")
        #: The top-level fields, in schema order (none for ``dict``: the table uses the keys it sees).
        self.fields: tuple[str, ...] = tuple(props) if isinstance(props, dict) else ()
        self._check = check
        self._row = row

    def validate(self, data: Any) -> Any:
        """The value for a parsed JSON object; ValueError with a short message naming each bad field."""
        return self._check(data)

    def row(self, value: Any) -> dict[str, Any]:
        """The fields of a validated value, for a table row."""
        return self._row(value)

    def system_prompt(self, system: str | None = None) -> str:
        """``system`` followed by what JSON mode needs: the word JSON, the schema and an example."""
        schema = json.dumps(self.json_schema, ensure_ascii=False)  # one line: every item pays for it
        example = json.dumps(example_value(self.json_schema), ensure_ascii=False)
        text = (
            "Answer with one JSON object and nothing else (no prose, no code fence). "
            f"It must be valid against this JSON Schema:\n```json\n{schema}\n```\n"
            f"An example of the shape (not of the content): {example}"
        )
        return f"{system}\n\n{text}" if system else text

    def __repr__(self) -> str:
        return f"<Schema {self.name}: {', '.join(self.fields) or 'any object'}>"


def as_schema(spec: Any) -> Schema:
    """A :class:`Schema` for ``dict``, a JSON Schema dict, a pydantic model or a dataclass."""
    if isinstance(spec, Schema):
        return spec
    if spec is dict:
        return Schema("dict", {"type": "object"}, _any_object, dict)
    if isinstance(spec, type) and callable(getattr(spec, "model_validate", None)):
        return _pydantic_model(spec)
    if isinstance(spec, type) and dataclasses.is_dataclass(spec):
        return _dataclass(spec)
    if isinstance(spec, Mapping):
        return _json_schema(dict(spec))
    raise TypeError(
        "schema= takes dict (any JSON object), a JSON Schema dict, a pydantic model or a dataclass, "
        f"not {type(spec).__name__}"
    )


def _any_object(data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {json_kind(data)}")
    return data


def _json_schema(schema: dict[str, Any]) -> Schema:
    if schema.get("type", "object") != "object":
        raise ValueError(
            f"schema= must describe a JSON object (type: object), not type {schema.get('type')!r}: "
            "JSON mode answers one object; wrap the value in a property"
        )
    # fastjsonschema compiles the schema to a Python function; jsonschema would do as well, but its
    # import took 6.6 s against 0.1 s here (in a Jupyter environment its format checkers load a
    # grammar), paid on the first schema= of every kernel. It reports the first error only, which
    # is enough to feed back.
    fjs = _need("fastjsonschema", "schema= with a JSON Schema")
    try:
        validator = fjs.compile(schema)
    except fjs.JsonSchemaDefinitionException as exc:
        raise ValueError(f"schema= is not a valid JSON Schema: {exc}") from None

    def check(data: Any) -> Any:
        try:
            validator(data)
        except fjs.JsonSchemaValueException as exc:
            where = [str(p) for p in (exc.path or [])[1:]]  # the path starts at "data", the whole answer
            name = str(exc.name or "data")
            message = str(exc.message)
            message = message[len(name) + 1 :] if message.startswith(name + " ") else message
            raise ValueError(_join([(_path(where), message)])) from None
        return data

    return Schema(str(schema.get("title") or "JSON Schema"), schema, check, _any_object)


def _pydantic_model(model: type) -> Schema:
    json_schema: dict[str, Any] = model.model_json_schema()  # type: ignore[attr-defined]

    def check(data: Any) -> Any:
        try:
            return model.model_validate(data)  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(_pydantic_message(exc)) from None

    def row(value: Any) -> dict[str, Any]:
        # JSON mode: the table holds what the answer said ("red", not Color.RED), like a dict schema.
        dumped: dict[str, Any] = value.model_dump(mode="json")
        return dumped

    return Schema(model.__name__, json_schema, check, row)


def _dataclass(cls: type) -> Schema:
    pydantic = _need("pydantic", f"schema={cls.__name__} (a dataclass)")
    adapter = pydantic.TypeAdapter(cls)
    json_schema: dict[str, Any] = adapter.json_schema()

    def check(data: Any) -> Any:
        if not isinstance(data, dict):  # pydantic would also take a dataclass instance; JSON gives dicts
            raise ValueError(f"expected a JSON object, got {json_kind(data)}")
        try:
            return adapter.validate_python(data)
        except ValueError as exc:
            raise ValueError(_pydantic_message(exc)) from None

    def row(value: Any) -> dict[str, Any]:
        dumped: dict[str, Any] = adapter.dump_python(value, mode="json")
        return dumped

    return Schema(cls.__name__, json_schema, check, row)


def _pydantic_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    return _join([(_path(e.get("loc", ())), str(e.get("msg", ""))) for e in errors()])


def _path(parts: Sequence[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(the object)"


def _join(errors: list[tuple[str, str]]) -> str:
    shown = [f"{where}: {what}" for where, what in errors[:_MAX_ERRORS]]
    more = len(errors) - _MAX_ERRORS
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def parse_answer(text: str, schema: Schema) -> Any:
    """The validated value of an answer; ValueError saying what is wrong (fed back on the retry)."""
    body = text.strip()
    if not body:
        # deepseek-api.md §4.5: JSON mode "may occasionally return empty content".
        raise ValueError("the answer is empty")
    fenced = _FENCE.match(body)
    if fenced is not None:
        body = fenced.group("body")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the answer is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"the answer is {json_kind(data)}, not a JSON object")
    return schema.validate(data)


def retry_prompt(problem: str) -> str:
    """The user turn of the one retry: what was wrong, and what to send instead."""
    return (
        f"That answer was rejected: {problem}. "
        "Reply again with only the corrected JSON object, valid against the schema."
    )


def _first(options: list[Any]) -> Any:
    return options[0]


def example_value(schema: Any, choose: Callable[[list[Any]], Any] = _first) -> Any:
    """A value of the shape ``schema`` describes; ``choose`` picks among enum values and alternatives.

    The system prompt shows one (deepseek-api.md §4.5 asks for an example); the offline server
    (ds_magic.testing) answers one, with a seeded ``choose``. Local ``$ref``s are followed.
    """
    return _example(schema, choose, schema, 0)


def _example(schema: Any, choose: Callable[[list[Any]], Any], root: Any, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 12:
        return None

    def again(sub: Any) -> Any:
        return _example(sub, choose, root, depth + 1)

    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return again(target)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return choose(list(schema["enum"]))
    for key in ("anyOf", "oneOf"):
        options = [s for s in schema.get(key) or [] if isinstance(s, dict) and s.get("type") != "null"]
        if options:
            return again(choose(options))
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        return again(schema["allOf"][0])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object":
        props = schema.get("properties")
        return {name: again(sub) for name, sub in props.items()} if isinstance(props, dict) else {}
    if kind == "array":
        return [again(schema.get("items") or {}) for _ in range(max(int(schema.get("minItems") or 1), 1))]
    if kind in ("integer", "number"):
        low: float = 0
        if isinstance(schema.get("minimum"), (int, float)):
            low = schema["minimum"]
        elif isinstance(schema.get("exclusiveMinimum"), (int, float)):
            low = schema["exclusiveMinimum"] + 1
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return bool(choose([True, False]))
    if kind == "string":
        return str(schema.get("title") or "text").lower().ljust(int(schema.get("minLength") or 0), ".")
    return None
