"""Tools from plain functions: ``@ds_magic.tool``, :func:`as_tools`, and each tool's JSON schema.

::

    @ds_magic.tool(safe=True)
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''The weather in a city now.

        Args:
            city: The city's name, e.g. "Paris".
            unit: Celsius or Fahrenheit.
        '''

The schema comes from the signature, the type hints and the docstring (deepseek-api.md §4.6): the
docstring's first line describes the tool, and its ``Args:`` (Google), ``Parameters`` (NumPy) or
``:param x:`` (Sphinx) entries describe the parameters. The type → JSON-schema step is pydantic's
``TypeAdapter``: it covers what data scientists pass (``Literal``, ``Enum``, ``Optional``, nested
lists and dicts, dataclasses, ``TypedDict``, pydantic models, ``datetime``) with ``$defs`` for nested
types, far more than a hand-written mapping would, and the same adapter validates the model's
arguments before the function is called. A parameter it cannot describe (no hint, ``*args``, an
arbitrary class) is a :class:`ToolError` at registration, one line naming the parameter.

DeepSeek's limits are checked before anything is sent: at most 128 tools, names matching
``[a-zA-Z0-9_-]{1,64}`` (§1.5). A ``strict`` tool needs every parameter required and
``additionalProperties: false`` (§4.6); such a request goes to ``/beta`` (:func:`needs_beta`).
"""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from .errors import ToolError
from .tool_docs import describe

__all__ = [
    "Tool",
    "tool",
    "as_tools",
    "make_tool",
    "describe",
    "needs_beta",
    "wants_loop",
    "MAX_TOOLS",
    "TOOL_NAME",
]

#: DeepSeek's limits (deepseek-api.md §1.5, §4.6).
MAX_TOOLS = 128
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")

F = TypeVar("F", bound=Callable[..., Any])

_NO_HINT = object()


@dataclass(frozen=True, eq=False)
class Tool:
    """A function offered to the model: what is sent in ``tools`` and how a call is made."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    safe: bool = False
    strict: bool = False
    # parameter name -> (pydantic TypeAdapter, positional-only?): validates the model's arguments.
    adapters: dict[str, tuple[Any, bool]] = field(default_factory=dict, repr=False)

    def spec(self) -> dict[str, Any]:
        """The entry of the request's ``tools`` list (deepseek-api.md §1.5, §4.6)."""
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = json.loads(json.dumps(self.parameters))  # a fresh copy per request
        if self.strict:
            fn["strict"] = True
        return {"type": "function", "function": fn}

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def bind(self, arguments: str) -> tuple[list[Any], dict[str, Any]]:
        """The model's JSON ``arguments`` as Python call arguments, each validated by its adapter.

        A ``ValueError`` with a one-line message for the model (bad JSON, a missing or unknown
        argument, a value of the wrong type): it is sent back as the call's error result.
        """
        try:
            given = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            raise ValueError(f"the arguments are not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(given, dict):
            raise ValueError("the arguments must be a JSON object of named parameters")
        unknown = sorted(set(given) - set(self.adapters))
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(unknown)}; parameters are {self._names()}")
        missing = [n for n in self.parameters.get("required", ()) if n not in given]
        if missing:
            raise ValueError(f"missing required argument(s): {', '.join(missing)}")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, (adapter, positional) in self.adapters.items():
            if name not in given:
                continue
            try:
                value = adapter.validate_python(given[name])
            except Exception as exc:  # pydantic's ValidationError: many lines; the first errors say it
                detail = "; ".join(
                    str(e.get("msg")) for e in getattr(exc, "errors", lambda: [])()[:3]
                ) or str(exc)
                raise ValueError(f"argument {name}: {detail}") from None
            if positional:
                args.append(value)
            else:
                kwargs[name] = value
        return args, kwargs

    def _names(self) -> str:
        return ", ".join(self.adapters) or "none"


# ------------------------------------------------------------------------------- the schema


def _where(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve, say
        raise ToolError(
            f"tool {_where(fn)}: its type hints cannot be read ({type(exc).__name__}: {exc})",
            "define every type the hints name before registering the function",
        ) from None


def _adapter(hint: Any) -> Any:
    # Imported here: pydantic takes ~150 ms to import and `import ds_magic` stays light without it.
    from pydantic import TypeAdapter

    return TypeAdapter(hint)


def _strictify(schema: Any) -> None:
    """Strict mode (deepseek-api.md §4.6): every object closed and all its properties required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
            schema["required"] = list(schema["properties"])
        for value in schema.values():
            _strictify(value)
    elif isinstance(schema, list):
        for value in schema:
            _strictify(value)


def _schema(
    fn: Callable[..., Any], docs: Mapping[str, str], strict: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        raise ToolError(
            f"tool {_where(fn)}: its signature cannot be read",
            "wrap it in a def with named, typed parameters",
        ) from None
    hints = _hints(fn)
    props: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    adapters: dict[str, tuple[Any, bool]] = {}
    for name, p in sig.parameters.items():
        where = f"tool {_where(fn)}: parameter {name}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            star = "*" if p.kind is p.VAR_POSITIONAL else "**"
            raise ToolError(
                f"tool {_where(fn)}: parameter {star}{name} cannot be described as JSON",
                "give the tool named parameters only",
            )
        hint = hints.get(name, _NO_HINT)
        if hint is _NO_HINT and name in ("self", "cls") and not props and not adapters:
            raise ToolError(
                f"{where}: a method as defined in its class needs its instance",
                "register the bound method instead: as_tools([obj.method])",
            )
        if hint is _NO_HINT:
            raise ToolError(f"{where} has no type hint", f"add one, e.g. {name}: str")
        try:
            adapter = _adapter(hint)
            schema = adapter.json_schema(ref_template="#/$defs/{model}")
        except Exception as exc:  # PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, ...
            shown = getattr(hint, "__name__", None) or str(hint)
            why = (str(exc).strip().splitlines() or [""])[0][:160]  # pydantic's own first line says why
            raise ToolError(
                f"{where}: type {shown} cannot be described as JSON ({type(exc).__name__}: {why})",
                "use str, int, float, bool, Literal, list, dict, a dataclass, TypedDict or pydantic model",
            ) from None
        defs.update(schema.pop("$defs", {}))
        if name in docs and "description" not in schema:
            schema["description"] = docs[name]
        if p.default is not p.empty:
            if strict:
                raise ToolError(
                    f"{where} has a default, and a strict tool needs every parameter required",
                    "remove the default, or register it with strict=False",
                )
            try:
                schema["default"] = json.loads(json.dumps(p.default))
            except (TypeError, ValueError):
                pass  # not JSON (a sentinel object): the parameter is optional, with no default shown
        else:
            required.append(name)
        props[name] = schema
        adapters[name] = (adapter, p.kind is p.POSITIONAL_ONLY)
    params: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        params["required"] = required
    if defs:
        params["$defs"] = defs
    if strict:
        _strictify(params)
    return params, adapters


def make_tool(
    fn: Callable[..., Any],
    *,
    safe: bool = False,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Tool:
    """A :class:`Tool` from a function (sync or async); a :class:`ToolError` if it cannot be one."""
    if not callable(fn):
        raise ToolError(f"a tool must be a function, not {type(fn).__name__}", "pass a def or a Tool")
    tool_name = name if name is not None else getattr(fn, "__name__", "")
    if not isinstance(tool_name, str) or not TOOL_NAME.fullmatch(tool_name):
        raise ToolError(
            f"tool name {tool_name!r} ({_where(fn)}) is not 1 to 64 of a-z, A-Z, 0-9, _ and -",
            "give it a name: @ds_magic.tool(name='my_tool')",
        )
    first, docs = describe(inspect.getdoc(fn))
    parameters, adapters = _schema(fn, docs, strict)
    return Tool(
        name=tool_name,
        description=description if description is not None else first,
        parameters=parameters,
        fn=fn,
        safe=safe,
        strict=strict,
        adapters=adapters,
    )


@overload
def tool(fn: F) -> F: ...
@overload
def tool(
    fn: None = None,
    *,
    safe: bool = False,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Callable[[F], F]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    *,
    safe: bool = False,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
) -> Any:
    """Mark a function as a tool: ``@ds_magic.tool`` or ``@ds_magic.tool(safe=True)``.

    The function is returned as it is, still callable, with its :class:`Tool` in ``__ds_tool__``;
    the schema is built now, so a parameter that cannot be described fails here, not mid-chat.
    ``safe=True``: its calls run without asking for approval.
    """

    def mark(f: F) -> F:
        made = make_tool(f, safe=safe, name=name, description=description, strict=strict)
        try:
            f.__ds_tool__ = made  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            raise ToolError(
                f"tool {_where(f)}: cannot be marked (a builtin?)", "wrap it in a def, or use make_tool()"
            ) from None
        return f

    return mark(fn) if fn is not None else mark


def as_tools(items: Iterable[Callable[..., Any] | Tool]) -> list[Tool]:
    """Tools from functions (marked with ``@tool`` or not) and ``Tool`` objects, checked together:
    a :class:`ToolError` for a function that cannot be one, a repeated name, or more than 128."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ToolError(
            f"tools must be a list of functions, not {type(items).__name__}", "pass tools=[fn1, fn2]"
        )
    out: list[Tool] = []
    for item in items:
        if isinstance(item, Tool):
            out.append(item)
        elif isinstance(getattr(item, "__ds_tool__", None), Tool):
            out.append(item.__ds_tool__)  # type: ignore[attr-defined]
        elif isinstance(item, Mapping):
            raise ToolError(
                "tools mixes functions and raw {'type': 'function'} specs",
                "pass functions (the loop runs them) or only raw specs (you run the calls)",
            )
        else:
            out.append(make_tool(item))
    seen: set[str] = set()
    for t in out:
        if t.name in seen:
            raise ToolError(f"two tools are named {t.name!r}", "give one another name: tool(name=...)")
        seen.add(t.name)
    if len(out) > MAX_TOOLS:
        raise ToolError(f"{len(out)} tools: DeepSeek takes at most {MAX_TOOLS}", "offer fewer tools")
    return out


def wants_loop(tools: Sequence[Any] | None) -> bool:
    """True when ``tools`` holds functions or ``Tool`` objects (a tool loop), not raw specs only."""
    return bool(tools) and not all(isinstance(t, Mapping) for t in tools or ())


def needs_beta(specs: Iterable[Mapping[str, Any]]) -> bool:
    """A request with a strict tool goes to ``/beta`` (deepseek-api.md §4.6)."""
    for spec in specs:
        fn = spec.get("function") if isinstance(spec, Mapping) else None
        if isinstance(fn, Mapping) and fn.get("strict") is True:
            return True
    return False
