"""``%%deepseek`` and ``%deepseek``: the settings (traitlets, ``%config DeepSeekMagics``) and the entry.

A cell is prepared, started and waited for in cell.py, in the wait mode kernel_hooks.py picks
(kernel-and-widgets.md §9.2); a line is a subcommand (commands.py) or a one-line prompt.
"""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, magics_class
from traitlets import Bool, Enum, Float, Int, List, Unicode

from ..client import DEFAULT_MODEL
from .cell import (
    CellCall,
    dry_run,
    prepare,
    result,
    start,
    start_batch,
    wait,
    wait_async,
    wait_batch,
    wait_batch_async,
)
from .commands import COMMANDS, usage
from .display import mark_shown
from .errors import DeepSeekCellError, cell_edge
from .kernel_hooks import in_kernel, resolve_mode
from .line_form import prompt_line
from .options import deepseek_magic, parse_options
from .tool_cell import dry_run_tools, run_tools, run_tools_async, wants_tools

__all__ = ["DeepSeekMagics", "DeepSeekCellError"]


@magics_class
class DeepSeekMagics(Magics):
    """Settings: ``%config DeepSeekMagics.model = "deepseek-v4-pro"`` (or in an IPython config file)."""

    model = Unicode(DEFAULT_MODEL, help="Model for %%deepseek cells.").tag(config=True)
    base_url = Unicode(
        "", help="API base URL; empty means DEEPSEEK_BASE_URL or https://api.deepseek.com."
    ).tag(config=True)
    dialect = Enum(
        ["auto", "deepseek", "openai"],
        "auto",
        help="What the server speaks: auto (DeepSeek's hosts and the offline server are deepseek, others openai), "
        "deepseek, or openai (standard chat-completions fields only; no resume, balance or DeepSeek prices).",
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
    context_max_chars = Int(
        4_000,
        help="Cap of one summarised {name} value (DataFrame, Series, ndarray, dict, list, long string) in a prompt.",
    ).tag(config=True)
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
    tools = List(
        Unicode(),
        default_value=[],
        help="Tools every %%deepseek cell offers the model (names in the namespace, or the built-ins "
        "python, variables); --tools overrides it.",
    ).tag(config=True)
    tool_approval = Enum(
        ["ask", "auto"],
        "ask",
        help="ask: each tool call waits for Run / Deny / Always (headless runs deny); auto: run every call.",
    ).tag(config=True)
    tool_max_steps = Int(8, help="With tools: at most this many requests per cell.").tag(config=True)

    @property
    def ip(self) -> InteractiveShell:
        shell = self.shell
        assert shell is not None  # registered with a shell by load_ipython_extension
        return shell

    @deepseek_magic
    def deepseek(self, line: str, cell: str | None = None) -> Any:
        """Ask DeepSeek; the answer streams live below the cell.

        Cell:  %%deepseek [options]  then the prompt on the following lines ({name} is interpolated).
        Line:  %deepseek history [--chat NAME] | chats | reset [NAME] | fork SRC DST | export FILE |
               import FILE | models | key | cancel-all | config | stats | cache | chat | explain | fix
               (bare %deepseek lists them all), or %deepseek [options] PROMPT, where the
               options are the cell's; %deepseek [options] -- PROMPT sends a prompt whose
               first word looks like a subcommand.
        """
        with cell_edge():  # one line for what fails; a bug says it is one (errors.py)
            if cell is None:
                return self._line(line)
            return self._run(self._prepare(line, cell))

    async def run_async(self, line: str, cell: str) -> Any:
        """The ``await`` path: the cell awaits in 100 ms slices, so clicks and ■ are handled."""
        with cell_edge():
            call = self._prepare(line, cell)
            if call.options.dry_run or resolve_mode(self, background=call.options.bg) != "await":
                return self._run(call)
            if call.options.each:
                return await wait_batch_async(self.ip, start_batch(self, self.ip, call))
            if wants_tools(self, call.options):
                return await run_tools_async(self, self.ip, call)
            resp, view = start(self, self.ip, call, "await")
            stopped = await wait_async(resp, view)
            return result(self, self.ip, call, resp, stopped=stopped)

    def _prepare(self, line: str | list[str], cell: str) -> CellCall:
        options = parse_options(self.deepseek, line)
        if options.each and options.tools:
            raise DeepSeekCellError(
                "--tools does not combine with --each: use ds_magic.batch(..., tools=[...])"
            )
        return prepare(self, self.ip, options, cell)

    def _run(self, call: CellCall) -> Any:
        if call.options.dry_run:
            return dry_run_tools(self, self.ip, call) if wants_tools(self, call.options) else dry_run(call)
        mode = resolve_mode(self, background=call.options.bg)
        if call.options.each:
            batch = start_batch(self, self.ip, call)
            return batch if mode == "background" else wait_batch(self.ip, batch)
        if mode == "await":
            mode = "block"  # reached only when the cell was not rewritten (e.g. run_cell_magic)
        if wants_tools(self, call.options):
            return run_tools(self, self.ip, call, mode if mode != "background" else "block")
        resp, view = start(self, self.ip, call, mode)
        if mode == "background":
            if in_kernel(self.ip):  # its live view shows it; in a terminal nothing does, so Out[] does
                mark_shown(resp)
            return resp
        stopped = wait(resp, view)
        return result(self, self.ip, call, resp, stopped=stopped)

    def _line(self, line: str) -> Any:
        words = line.split()
        if not words:
            raise DeepSeekCellError(usage())
        command = COMMANDS.get(words[0])
        if command is not None:
            return command(self, words[1:])
        # A one-line prompt, with the cell's options: %deepseek -m deepseek-v4-pro What is a monad?
        form = prompt_line(line, COMMANDS)
        return self._run(self._prepare(form.options, form.prompt))
