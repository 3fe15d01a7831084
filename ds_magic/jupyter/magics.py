"""``%%deepseek`` and ``%deepseek``: parse the line, start a Response, hand it to the view, wait.

How a cell waits (kernel-and-widgets.md §9.2): ``await`` (default on ipykernel ≥ 7.4) rewrites the
cell into a top-level ``await`` through an input transformer, so the kernel handles the Cancel click
while the answer streams; ``block`` polls in 100 ms slices (older kernels: ■ still cancels);
``background`` returns at once (Cancel, ``%deepseek cancel-all`` and ■ through the idle SIGINT hook
still stop it). The request itself always runs on the core's engine thread.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import re
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Enum, Float, Int, List, Unicode

from ..client import Client
from ..conversation_store import ConversationStore, history_text
from ..errors import DeepSeekError
from ..interpolate import interpolate
from ..request import build_body
from ..response import Response
from .display import mark_shown
from .display import register as register_display
from .display import unregister as unregister_display

__all__ = ["DeepSeekMagics", "DeepSeekCellError", "load_ipython_extension", "unload_ipython_extension"]

RUNNER_NAME = "__ds_magic_run__"
_CELL_RE = re.compile(r"^%%deepseek(\s|$)")
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


class DeepSeekCellError(UsageError):
    """Shown by IPython as one line (no traceback), and the cell fails so Run All stops."""


@dataclass
class _State:
    magics: DeepSeekMagics | None = None
    store: ConversationStore = field(default_factory=ConversationStore)
    api_key: str | None = None
    active: set[Response] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clients: dict[tuple[str, str, float | None], Client] = field(default_factory=dict)
    prev_sigint: Any = None
    sigint_installed: bool = False
    last: Response | None = None


_state = _State()


def _ipykernel_version() -> tuple[int, ...] | None:
    try:
        import ipykernel
    except ImportError:
        return None
    nums = re.findall(r"\d+", ipykernel.__version__)[:2]
    return tuple(int(n) for n in nums)


@dataclass
class _Call:
    args: Any
    prompt: str
    params: dict[str, Any]
    conversation: Any
    messages: list[dict[str, Any]] | None
    fmt: str
    json_mode: bool


@magics_class
class DeepSeekMagics(Magics):
    """Settings: ``%config DeepSeekMagics.model = "deepseek-v4-pro"`` (or in an IPython config file)."""

    model = Unicode("deepseek-flash", help="Model for %%deepseek cells.").tag(config=True)
    base_url = Unicode(
        "", help="API base URL; empty means DEEPSEEK_BASE_URL or https://api.deepseek.com."
    ).tag(config=True)
    system = Unicode("", help="Default system prompt for new conversations.").tag(config=True)
    temperature = Float(
        None, allow_none=True, help="Sampling temperature (ignored by DeepSeek in thinking mode)."
    ).tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Maximum tokens per answer, thinking included.").tag(
        config=True
    )
    max_history_tokens = Int(
        200_000, allow_none=True, help="Oldest turns are left out of requests beyond this estimated size."
    ).tag(config=True)
    wait_mode = Enum(
        ["auto", "await", "block", "background"],
        "auto",
        help="How a cell waits: auto (await on ipykernel ≥ 7.4, else block), await, block or background.",
    ).tag(config=True)
    throttle_ms = Int(100, help="At most one display update per this many milliseconds while streaming.").tag(
        config=True
    )
    show_reasoning = Bool(True, help="Show the model's thinking in a collapsible section.").tag(config=True)
    thinking = Bool(
        None, allow_none=True, help="Force thinking mode on or off (None: the model's default)."
    ).tag(config=True)
    reasoning_effort = Unicode(None, allow_none=True, help="low, high or max (thinking mode).").tag(
        config=True
    )
    interpolate = Bool(True, help="Replace {name} in prompts with values from the namespace.").tag(
        config=True
    )
    timeout = Float(None, allow_none=True, help="Seconds for connect, first token and idle deadlines.").tag(
        config=True
    )

    cache = Bool(
        False, help="Replay identical requests from the on-disk response cache (costs nothing)."
    ).tag(config=True)
    resume = Int(
        2,
        help="Resume a stream that drops mid-answer at most this many times (chat prefix completion on the beta endpoint); 0 = off.",
    ).tag(config=True)
    redact = List(
        Unicode(),
        default_value=[],
        help="Words masked in every answer as it streams (case-insensitive, whole words); 're:<pattern>' for a regular expression.",
    ).tag(config=True)
    batch_concurrency = Int(8, help="Requests in flight for %%deepseek --each (lowered on 429).").tag(
        config=True
    )

    # ------------------------------------------------------------------ helpers
    def _client(self) -> Client:
        key = _state.api_key
        try:
            with _state.lock:
                ident = (key or "", self.base_url, self.timeout, self.resume, tuple(self.redact))
                client = _state.clients.get(ident)
                if client is None:
                    client = Client(
                        api_key=key,
                        base_url=self.base_url or None,
                        timeout=self.timeout,
                        model=self.model,
                        resume=self.resume,
                        redact=list(self.redact) or None,
                    )
                    _state.clients[ident] = client
                return client
        except DeepSeekError as exc:
            raise DeepSeekCellError(str(exc)) from None
        except ValueError as exc:
            raise DeepSeekCellError(str(exc)) from None

    def _in_kernel(self) -> bool:
        return getattr(self.shell, "kernel", None) is not None

    def resolve_mode(self, args: Any) -> str:
        if getattr(args, "bg", False):
            return "background"
        mode = str(self.wait_mode)
        if mode == "auto":
            version = _ipykernel_version()
            if self._in_kernel() and version is not None and version >= (7, 4):
                return "await"
            return "block"
        if mode == "await" and not self._in_kernel():
            return "block"
        return mode

    def _prepare(self, line: str, cell: str) -> _Call:
        args = parse_argstring(self.deepseek, line)
        if args.words:
            raise DeepSeekCellError(
                f"Unexpected words after %%deepseek: {' '.join(args.words)!r} — put the prompt in the cell body"
            )
        prompt = cell.strip("\n").rstrip()
        if not prompt.strip():
            raise DeepSeekCellError("The cell is empty: write your prompt on the lines below %%deepseek")
        if self.interpolate and not args.raw and not args.each:
            # With --each the batch fills {item} (and an item's keys) itself.
            prompt = interpolate(prompt, self.shell.user_ns)
        params: dict[str, Any] = {}
        temperature = args.temperature if args.temperature is not None else self.temperature
        if temperature is not None:
            params["temperature"] = temperature
        max_tokens = args.max_tokens if args.max_tokens is not None else self.max_tokens
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        if args.stop:
            params["stop"] = args.stop
        thinking = args.thinking if args.thinking is not None else self.thinking
        if thinking is not None:
            params["thinking"] = bool(thinking)
        effort = args.effort or self.reasoning_effort
        if effort:
            params["reasoning_effort"] = effort
        system = args.system
        if args.json:
            params["response_format"] = {"type": "json_object"}
            # DeepSeek's JSON mode needs the word "json" in the prompt (deepseek-api.md §4.5).
            if "json" not in prompt.lower():
                prompt += "\n\nAnswer with a JSON object."
        model = args.model or self.model
        conversation = None
        messages = None
        if args.cache or self.cache:
            params["cache"] = True
        if args.allow_secrets:
            params["allow_secrets"] = True
        if args.no_history or args.each:
            sys_prompt = system or self.system
            messages = ([{"role": "system", "content": sys_prompt}] if sys_prompt else []) + [
                {"role": "user", "content": prompt}
            ]
        else:
            conversation = _state.store.get(args.chat or "default")
            if args.new:
                conversation.clear()
                if not system:
                    conversation.system = self.system or None
            if system:
                conversation.system = system
            elif conversation.system is None and self.system and not conversation.turns:
                conversation.system = self.system
            conversation.max_history_tokens = self.max_history_tokens
        params["model"] = model
        try:
            checked = {k: v for k, v in params.items() if k not in ("cache", "allow_secrets")}
            build_body(
                messages or [{"role": "user", "content": prompt}], **checked
            )  # clear errors before sending
        except ValueError as exc:
            raise DeepSeekCellError(str(exc)) from None
        return _Call(args, prompt, params, conversation, messages, args.format, args.json)

    def _dry_run(self, call: _Call) -> dict[str, Any]:
        params = dict(call.params)
        params.pop("cache", None)
        params.pop("allow_secrets", None)
        model = params.pop("model")
        if call.conversation is not None:
            thinking_on = params.get("thinking", True) is not False
            msgs = call.conversation.messages(call.prompt, thinking=thinking_on)
        else:
            assert call.messages is not None
            msgs = call.messages
        body = build_body(msgs, model, **params)
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return body

    def _start_batch(self, call: _Call) -> Any:
        from ..batching import batch

        name = call.args.each
        if name not in self.shell.user_ns:
            raise DeepSeekCellError(f"--each {name}: no variable named {name!r} in the namespace")
        params = dict(call.params)
        model = params.pop("model")
        msgs = call.messages or []
        system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
        try:
            result = batch(
                call.prompt,
                self.shell.user_ns[name],
                client=self._client(),
                concurrency=self.batch_concurrency,
                model=model,
                system=system,
                **params,
            )
        except (DeepSeekError, ValueError, TypeError) as exc:
            raise DeepSeekCellError(str(exc)) from None
        if call.args.out:
            self.shell.user_ns[call.args.out] = result
        return result

    def _start(self, call: _Call, mode: str) -> tuple[Response, Any]:
        client = self._client()
        params = dict(call.params)
        model = params.pop("model")
        try:
            if call.conversation is not None:
                resp = client.chat(call.prompt, model=model, conversation=call.conversation, **params)
            else:
                assert call.messages is not None
                resp = client.chat(call.messages, model=model, **params)
        except (DeepSeekError, ValueError) as exc:
            raise DeepSeekCellError(str(exc)) from None
        with _state.lock:
            _state.active.add(resp)
            _state.last = resp

        def forget(r: Response) -> None:
            with _state.lock:
                _state.active.discard(r)

        resp.add_done_callback(forget)
        if call.args.out:
            self.shell.user_ns[call.args.out] = resp
        fmt = "text" if call.fmt == "code" else call.fmt
        if self._in_kernel():
            from .stream_view import StreamView

            hint = ""
            if mode == "block":
                version = _ipykernel_version() or (0,)
                if version < (7, 0) or version >= (7, 4):
                    hint = "press ■ (interrupt) to stop"
            view: Any = StreamView(
                resp,
                fmt=fmt,
                show_reasoning=self.show_reasoning,
                throttle_ms=self.throttle_ms,
                cancel_hint=hint,
            )
            view.show()
        else:
            from .stream_view import TextView

            view = TextView(resp, show_reasoning=self.show_reasoning)
        return resp, view

    def _result(self, call: _Call, resp: Response) -> Any:
        if resp.status in ("error", "interrupted"):
            raise DeepSeekCellError(
                str(resp.error) if resp.error else f"The request ended with status {resp.status}"
            )
        value: Any = resp
        if call.json_mode and resp.status == "ok":
            try:
                value = json.loads(resp.text_so_far)
            except ValueError as exc:
                raise DeepSeekCellError(
                    f"The answer is not valid JSON ({exc}); the raw Response is in _ds_last — raise max_tokens or ask for JSON explicitly"
                ) from None
            if call.args.out:
                self.shell.user_ns[call.args.out] = value
        if call.fmt == "code":
            m = _FENCE.search(resp.text_so_far)
            code = m.group(1) if m else resp.text_so_far
            self.shell.set_next_input(code.rstrip("\n"), replace=False)
        self.shell.user_ns["_ds_last"] = resp
        if isinstance(value, Response):
            mark_shown(value)
        return value

    # ------------------------------------------------------------------ the magic
    @magic_arguments()
    @argument("-m", "--model", help="Model name (default: DeepSeekMagics.model).")
    @argument("-s", "--system", help="System prompt for this conversation.")
    @argument("-c", "--chat", metavar="NAME", help="Named conversation to continue (default: 'default').")
    @argument("--new", action="store_true", help="Start the conversation afresh.")
    @argument("--no-history", action="store_true", help="One-shot: send no history and store nothing.")
    @argument("-o", "--out", metavar="VAR", help="Also store the result in this variable.")
    @argument("-t", "--temperature", type=float, help="Sampling temperature, 0-2.")
    @argument("--max-tokens", type=int, help="Maximum tokens of the answer (thinking included).")
    @argument("--stop", action="append", help="Stop sequence (repeatable).")
    @argument("--json", action="store_true", help="JSON mode: the result is parsed into a Python object.")
    @argument(
        "--thinking",
        dest="thinking",
        action="store_const",
        const=True,
        default=None,
        help="Turn thinking on.",
    )
    @argument("--no-thinking", dest="thinking", action="store_const", const=False, help="Turn thinking off.")
    @argument("--effort", choices=["low", "medium", "high", "max"], help="Reasoning effort (thinking mode).")
    @argument(
        "-f",
        "--format",
        choices=["markdown", "text", "code"],
        default="markdown",
        help="How to show the answer; 'code' puts its code block in a new cell below.",
    )
    @argument("--bg", action="store_true", help="Run in the background: the cell returns at once.")
    @argument(
        "--dry-run", action="store_true", help="Show the exact request that would be sent; send nothing."
    )
    @argument("--raw", action="store_true", help="Do not replace {name} with values from the namespace.")
    @argument(
        "--cache",
        action="store_true",
        help="Use the response cache for this cell (also DeepSeekMagics.cache).",
    )
    @argument(
        "--each",
        metavar="VAR",
        help="Run the cell as a template over the list/Series VAR ({item} is each element); no history.",
    )
    @argument(
        "--allow-secrets",
        action="store_true",
        help="Send the prompt even if it looks like it holds a secret (an API key, a private key).",
    )
    @argument("words", nargs="*", help="(line magic) a subcommand or a one-line prompt.")
    @line_cell_magic
    def deepseek(self, line: str, cell: str | None = None) -> Any:
        """Ask DeepSeek; the answer streams live below the cell.

        Cell:  %%deepseek [options]  then the prompt on the following lines ({name} is interpolated).
        Line:  %deepseek history [--chat NAME] | chats | reset [NAME] | fork SRC DST | export FILE |
               import FILE | models | key | cancel-all | config | <a one-line prompt>
        """
        if cell is None:
            return self._line(line)
        call = self._prepare(line, cell)
        if call.args.dry_run:
            return self._dry_run(call)
        mode = self.resolve_mode(call.args)
        if call.args.each:
            result = self._start_batch(call)
            return result if mode == "background" else result.wait()
        if mode == "await":
            mode = "block"  # reached only when the cell was not rewritten (e.g. run_cell_magic)
        resp, view = self._start(call, mode)
        if mode == "background":
            mark_shown(resp)
            return resp
        if hasattr(view, "run"):
            view.run()  # terminal: print as it streams; Ctrl-C cancels
        else:
            try:
                resp.join()
            except KeyboardInterrupt:
                view.wait_finalized()
                raise
            view.wait_finalized()
        return self._result(call, resp)

    async def run_async(self, line: str, cell: str) -> Any:
        """The ``await`` path: the cell awaits in 100 ms slices, so clicks and ■ are handled."""
        call = self._prepare(line, cell)
        if call.args.dry_run:
            return self._dry_run(call)
        mode = self.resolve_mode(call.args)
        if mode != "await":
            return self.deepseek(line, cell)
        if call.args.each:
            return await self._start_batch(call)
        resp, view = self._start(call, mode)
        interrupted = False
        try:
            await resp.finished()
        except (asyncio.CancelledError, KeyboardInterrupt):
            # ■: ipykernel cancels the cell's task and finished() has already cancelled the request.
            # The user asked for it, so say what happened in one line rather than show a traceback
            # through asyncio; the cell still fails, so Run All stops here.
            interrupted = True
        finally:
            for _ in range(100):
                if view.wait_finalized(0):
                    break
                await asyncio.sleep(0.01)
        if interrupted:
            raise DeepSeekCellError(
                f"Interrupted: the request was stopped after {resp.timing.tokens} tokens; "
                "the partial answer is kept in the history, marked cancelled."
            )
        return self._result(call, resp)

    # ------------------------------------------------------------------ line subcommands
    def _line(self, line: str) -> Any:
        words = line.split()
        if not words:
            raise DeepSeekCellError(
                "Usage: %deepseek history | chats | reset | fork | export | import | models | key | cancel-all | config, or %%deepseek for a cell"
            )
        handler = _SUBCOMMANDS.get(words[0])
        if handler is None:
            # A one-line prompt: %deepseek What is a monad?
            return self.deepseek("", line)
        return handler(self, words[1:])

    def _history(self, rest: list[str]) -> None:
        name = "default"
        if rest[:1] in (["--chat"], ["-c"]) and len(rest) > 1:
            name = rest[1]
        elif rest:
            name = rest[0]
        try:
            conv = _state.store.get(name, create=False)
        except KeyError:
            raise DeepSeekCellError(
                f"No conversation named {name!r}; existing: {', '.join(_state.store.names()) or 'none'}"
            ) from None
        print(history_text(conv) or f"(conversation {name!r} is empty)")

    def _chats(self, rest: list[str]) -> None:
        names = _state.store.names()
        if not names:
            print("(no conversations yet)")
        for n in names:
            print(f"{n}: {len(_state.store.get(n))} turns")

    def _reset(self, rest: list[str]) -> None:
        name = rest[0] if rest else "default"
        _state.store.reset(name)
        print(f"Conversation {name!r} cleared.")

    def _fork(self, rest: list[str]) -> None:
        if len(rest) != 2:
            raise DeepSeekCellError("Usage: %deepseek fork SRC DST")
        try:
            _state.store.fork(rest[0], rest[1])
        except (KeyError, ValueError) as exc:
            raise DeepSeekCellError(str(exc).strip("'\"")) from None
        print(f"Forked {rest[0]!r} into {rest[1]!r}.")

    def _export(self, rest: list[str]) -> None:
        if len(rest) != 1:
            raise DeepSeekCellError("Usage: %deepseek export FILE.json")
        _state.store.export(rest[0])
        print(
            f"Exported {len(_state.store.names())} conversation(s) to {rest[0]} (no API key is ever written)."
        )

    def _import(self, rest: list[str]) -> None:
        if len(rest) != 1:
            raise DeepSeekCellError("Usage: %deepseek import FILE.json")
        try:
            names = _state.store.import_(rest[0])
        except (OSError, ValueError) as exc:
            raise DeepSeekCellError(f"Could not import {rest[0]}: {exc}") from None
        print(f"Imported: {', '.join(names)}")

    def _models(self, rest: list[str]) -> list[str]:
        try:
            models = self._client().models()
        except DeepSeekError as exc:
            raise DeepSeekCellError(str(exc)) from None
        for m in models:
            print(m)
        return models

    def _key(self, rest: list[str]) -> None:
        key = getpass.getpass("DeepSeek API key (kept in memory only): ").strip()
        if not key:
            raise DeepSeekCellError("No key entered; nothing changed.")
        _state.api_key = key
        _state.clients.clear()
        print("API key set for this kernel (in memory only).")

    def _cancel_all(self, rest: list[str]) -> None:
        n = cancel_all()
        print(f"Cancelled {n} request(s).")

    def _config(self, rest: list[str]) -> None:
        import os

        for name in sorted(self.trait_names(config=True)):
            print(f"DeepSeekMagics.{name} = {getattr(self, name)!r}")
        key = _state.api_key or os.environ.get("DEEPSEEK_API_KEY", "")
        source = "%deepseek key" if _state.api_key else ("DEEPSEEK_API_KEY" if key else "not set")
        masked = ("****" + key[-4:]) if len(key) >= 16 else ("****" if key else "")
        print(f"API key: {masked} ({source})")
        print(
            f"Base URL: {self.base_url or os.environ.get('DEEPSEEK_BASE_URL') or 'https://api.deepseek.com'}"
        )
        print(f"Wait mode now: {self.resolve_mode(None)}")


def _stats(self: DeepSeekMagics, rest: list[str]) -> None:
    from ..run_stats import plot_records, stats

    totals = stats()
    for key, value in totals.items():
        print(f"{key}: {value}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return  # the totals above are the whole answer without matplotlib
    if totals.get("requests"):
        from IPython.display import display

        display(plot_records())


def _cache_cmd(self: DeepSeekMagics, rest: list[str]) -> Any:
    from ..cache import default_cache

    store = default_cache()
    action = rest[0] if rest else "stats"
    if action == "stats":
        st = store.stats()
        for key, value in st.items():
            print(f"{key}: {value}")
        return st
    if action == "clear":
        store.clear()
        print("Response cache cleared.")
        return None
    raise DeepSeekCellError("Usage: %deepseek cache stats | clear")


def _chat_cmd(self: DeepSeekMagics, rest: list[str]) -> Any:
    """``%deepseek chat [NAME]``: an interactive chat widget on conversation NAME (ds_magic/chat.py)."""
    from .chat import chat_command

    return chat_command(rest)


_SUBCOMMANDS = {
    "history": DeepSeekMagics._history,
    "chats": DeepSeekMagics._chats,
    "reset": DeepSeekMagics._reset,
    "fork": DeepSeekMagics._fork,
    "export": DeepSeekMagics._export,
    "import": DeepSeekMagics._import,
    "models": DeepSeekMagics._models,
    "key": DeepSeekMagics._key,
    "cancel-all": DeepSeekMagics._cancel_all,
    "config": DeepSeekMagics._config,
    "stats": _stats,
    "cache": _cache_cmd,
    "chat": _chat_cmd,
}


def cancel_all() -> int:
    with _state.lock:
        active = list(_state.active)
    for r in active:
        r.cancel()
    return len(active)


async def _run_cell(line: str, cell: str) -> Any:
    magics = _state.magics
    if magics is None:
        raise UsageError("ds_magic is not loaded: run %load_ext ds_magic")
    return await magics.run_async(line, cell)


def _transform(lines: list[str]) -> list[str]:
    """Rewrite a ``%%deepseek`` cell into a top-level await, when the await mode applies."""
    if not lines or not _CELL_RE.match(lines[0]):
        return lines
    magics = _state.magics
    first = lines[0].rstrip("\n")
    if magics is None or first.rstrip().endswith("?") or magics.resolve_mode(None) != "await":
        return lines
    line = first[len("%%deepseek") :].strip()
    cell = "".join(lines[1:])
    return [f"await {RUNNER_NAME}({line!r}, {cell!r})\n"]


def _idle_sigint(signum: int, frame: Any) -> None:
    # ■ while no cell runs: the kernel ignores SIGINT then, so background streams would go on
    # billing (kernel-and-widgets.md §6). Cancel from a thread: never take locks in a handler.
    threading.Thread(target=cancel_all, name="ds-cancel-all", daemon=True).start()


def load_ipython_extension(ip: Any) -> None:
    if _state.magics is not None:
        return
    magics = DeepSeekMagics(shell=ip)
    ip.register_magics(magics)
    if magics not in ip.configurables:
        ip.configurables.append(magics)
    _state.magics = magics
    register_display(ip)
    ip.user_ns[RUNNER_NAME] = _run_cell
    ip.user_ns_hidden[RUNNER_NAME] = _run_cell
    if _transform not in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.append(_transform)
    kernel = getattr(ip, "kernel", None)
    if kernel is not None and hasattr(kernel, "pre_handler_hook"):
        # ipykernel creates saved_sigint_handler in its first pre_handler_hook, so at start-up
        # (extensions load before any message) it does not exist yet.
        _state.prev_sigint = getattr(kernel, "saved_sigint_handler", None)
        kernel.saved_sigint_handler = _idle_sigint
        _state.sigint_installed = True
        # Loaded at kernel start-up (not inside a message handler) the idle handler is installed
        # right now; inside a cell, ipykernel's post_handler_hook installs saved_sigint_handler.
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            try:
                signal.signal(signal.SIGINT, _idle_sigint)
            except ValueError:  # not the main thread
                pass


def unload_ipython_extension(ip: Any) -> None:
    magics = _state.magics
    if magics is None:
        return
    cancel_all()
    if _transform in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(_transform)
    ip.user_ns.pop(RUNNER_NAME, None)
    ip.user_ns_hidden.pop(RUNNER_NAME, None)
    for kind in ("line", "cell"):
        ip.magics_manager.magics[kind].pop("deepseek", None)
    ip.magics_manager.registry.pop("DeepSeekMagics", None)
    if magics in ip.configurables:
        ip.configurables.remove(magics)
    kernel = getattr(ip, "kernel", None)
    if _state.sigint_installed and kernel is not None:
        kernel.saved_sigint_handler = _state.prev_sigint if _state.prev_sigint is not None else signal.SIG_IGN
        _state.sigint_installed = False
    unregister_display(ip)
    _state.magics = None
    _state.clients.clear()
