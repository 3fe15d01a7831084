"""The tool loop through real sockets to the offline server (issue 16): functions really run, in the
caller's thread; what they return is in the next request (read from the server's request log)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from offline_helpers import KEY

import ds_magic
from ds_magic import Client, ToolCallDelta, ToolLoop
from ds_magic.testing import OfflineServer, Script

HANG = 30.0  # hang guard of every wait: far above what any of these takes


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": json.dumps(arguments)}


def calls_then_answer(srv: OfflineServer, *calls: dict[str, Any], answer: str = "Done.") -> None:
    srv.enqueue(Script(text="", reasoning="I need a tool.", tool_calls=list(calls)), Script(text=answer))


def tool_messages(srv: OfflineServer, request: int = -1) -> list[dict[str, Any]]:
    return [m for m in srv.requests[request].body["messages"] if m["role"] == "tool"]


@pytest.fixture
def client(srv: OfflineServer) -> Client:
    return Client(api_key=KEY, base_url=srv.url)


def test_two_step_loop_runs_the_function_here_and_sends_its_result(
    srv: OfflineServer, client: Client
) -> None:
    seen: list[tuple[int, int, str]] = []

    @ds_magic.tool(safe=True)
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        seen.append((a, b, threading.current_thread().name))
        print("adding", a, b)
        return a + b

    calls_then_answer(srv, call("add", a=2, b=3), answer="It is 5.")
    loop = client.chat("What is 2+3?", tools=[add])
    assert isinstance(loop, ToolLoop) and loop.state == "pending" and not srv.requests  # not started
    steps: list[str] = []
    loop.on_step = lambda r: steps.append(threading.current_thread().name)
    loop.run()
    assert loop.state == "done" and loop.text == "It is 5."
    assert seen == [(2, 3, threading.current_thread().name)]  # ran here, not on ds-engine
    assert steps == [threading.current_thread().name] * 2
    assert len(srv.requests) == 2 and len(loop.steps) == 2
    first, second = (r.body for r in srv.requests)
    assert first["tools"] == [add.__ds_tool__.spec()]  # type: ignore[attr-defined]
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant" and assistant["reasoning_content"] == "I need a tool."
    assert assistant["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    (tool_msg,) = tool_messages(srv)
    assert tool_msg == {
        "role": "tool",
        "tool_call_id": assistant["tool_calls"][0]["id"],
        "content": "printed:\nadding 2 3\nreturned: 5",
    }
    (rec,) = loop.calls
    assert (rec.status, rec.decision, rec.note, rec.result, rec.output) == (
        "ok",
        "run",
        "safe",
        "5",
        "adding 2 3\n",
    )
    assert any(isinstance(e, ToolCallDelta) and e.name == "add" for e in loop.steps[0])  # streamed as deltas
    summary = loop.summary()
    assert summary["steps"] == 2 and summary["calls"] == 1 and summary["state"] == "done"
    assert loop.usage().total_tokens == sum(r.usage.total_tokens for r in loop.steps if r.usage)
    assert loop.cost() == pytest.approx(sum(ds_magic.pricing.cost_of(r).usd for r in loop.steps))  # type: ignore[union-attr]


def test_a_tool_that_raises_sends_the_error_and_the_loop_goes_on(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool(safe=True)
    def divide(a: float, b: float) -> float:
        """Divide."""
        return a / b

    calls_then_answer(srv, call("divide", a=1, b=0), call("nope"), call("divide", a="x", b=1))
    loop = client.chat("1/0?", tools=[divide]).run()
    assert loop.state == "done" and loop.text == "Done."
    contents = [m["content"] for m in tool_messages(srv)]
    assert contents[0] == "error: ZeroDivisionError: float division by zero"
    assert contents[1] == "error: unknown tool 'nope'"
    assert contents[2].startswith("error: bad arguments: argument a:")
    assert [r.status for r in loop.calls] == ["error", "error", "error"]


def test_denied_without_an_approver_and_always_remembers(srv: OfflineServer, client: Client) -> None:
    ran: list[str] = []

    def rm(path: str) -> str:
        """Remove a file."""
        ran.append(path)
        return "removed"

    calls_then_answer(srv, call("rm", path="a"))
    loop = client.chat("clean up", tools=[rm]).run()  # headless: no approver
    assert ran == [] and loop.calls[0].status == "denied" and loop.calls[0].note == "no approver: denied"
    assert (
        tool_messages(srv)[0]["content"] == "denied by the user: the call was not run (no approver: denied)"
    )

    srv.reset()
    asked: list[str] = []

    def approve(c: Any, t: Any) -> str:
        asked.append(c.name)
        return "always"

    calls_then_answer(srv, call("rm", path="a"), call("rm", path="b"))
    loop = client.chat("clean up", tools=[rm], approve=approve).run()
    assert asked == ["rm"] and ran == ["a", "b"]  # the second call was not asked again
    assert [r.decision for r in loop.calls] == ["always", "run"] and loop.allowed == {"rm"}


def test_max_steps_stops_with_a_clear_line(srv: OfflineServer, client: Client) -> None:
    ran: list[int] = []

    @ds_magic.tool(safe=True)
    def again(n: int) -> int:
        """Again."""
        ran.append(n)
        return n

    for i in range(3):
        srv.enqueue(Script(text="", tool_calls=[call("again", n=i)]))
    loop = client.chat("loop", tools=[again], max_steps=2).run()
    assert loop.state == "max_steps" and len(srv.requests) == 2 and ran == [0]
    assert loop.note == (
        "stopped after max_steps=2 requests: the model still wanted 1 tool call(s); raise max_steps= to let it go on"
    )
    assert loop.calls[-1].status == "skipped" and loop.note in loop.calls[-1].note
    assert loop.text == ""
    with pytest.raises(ValueError, match="max_steps must be"):
        client.chat("x", tools=[again], max_steps=0)


def test_results_are_capped_and_the_cut_said(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool(safe=True)
    def big() -> str:
        """Big."""
        return "x" * 50_000

    calls_then_answer(srv, call("big"))
    client.chat("big", tools=[big]).run()
    content = tool_messages(srv)[0]["content"]
    assert content == "x" * 20_000 + "… [cut: 30,000 more characters of 50,000]"


def test_strict_tools_go_to_beta(srv: OfflineServer, client: Client) -> None:
    def exact(a: int) -> int:
        """Exact."""
        return a

    strict = ds_magic.tools.make_tool(exact, strict=True, safe=True)
    calls_then_answer(srv, call("exact", a=1))
    loop = client.chat("exact", tools=[strict]).run()
    assert loop.state == "done" and [r.path for r in srv.requests] == ["/beta/chat/completions"] * 2
    # A raw strict spec goes to /beta too; sent to the plain endpoint, the server refuses it.
    srv.reset()
    assert client.chat("x", tools=[strict.spec()]).wait().status == "ok"
    assert srv.requests[-1].path == "/beta/chat/completions"


def test_cancel_while_streaming_closes_the_stream(srv: OfflineServer, client: Client) -> None:
    srv.enqueue(Script(text="word " * 400, tokens_per_second=50))
    loop = client.chat("long", tools=[ds_magic.tools.make_tool(lambda: 1, name="one")])
    started = threading.Event()

    def on_step(resp: Any) -> None:
        resp.add_listener(lambda ev: started.set())

    loop.on_step = on_step
    t = threading.Thread(target=lambda: (started.wait(HANG), loop.cancel()))
    t.start()
    loop.run()
    t.join(HANG)
    assert loop.state == "cancelled" and loop.steps[0].status == "cancelled"
    assert srv.wait_for_disconnect(HANG) is not None  # the HTTP stream was really closed
    assert len(srv.requests) == 1


def test_cancel_while_waiting_for_approval_counts_as_denied(srv: OfflineServer, client: Client) -> None:
    ran: list[int] = []

    def touch(n: int) -> int:
        """Touch."""
        ran.append(n)
        return n

    calls_then_answer(srv, call("touch", n=1), call("touch", n=2))

    async def main() -> ToolLoop:
        waiting = asyncio.Event()

        def approve(c: Any, t: Any) -> Any:
            waiting.set()
            return asyncio.get_running_loop().create_future()  # the view's buttons: never clicked

        loop = client.chat("touch", tools=[touch], approve=approve)
        task = asyncio.ensure_future(loop.arun())
        await asyncio.wait_for(waiting.wait(), HANG)
        loop.cancel()  # Cancel in the view while it waits for Run / Deny
        return await asyncio.wait_for(task, HANG)

    loop = asyncio.run(main())
    assert loop.state == "cancelled" and ran == [] and len(srv.requests) == 1
    first, second = loop.calls
    assert (first.status, first.note) == ("denied", "cancelled while waiting for approval: denied")
    assert (second.status, second.note) == ("cancelled", "the loop was cancelled")


def test_sync_cancel_from_another_thread_during_approval(srv: OfflineServer, client: Client) -> None:
    def touch(n: int) -> int:
        """Touch."""
        return n

    calls_then_answer(srv, call("touch", n=1))
    holder: list[ToolLoop] = []

    def approve(c: Any, t: Any) -> str:  # like input(): blocks while someone else cancels
        other = threading.Thread(target=holder[0].cancel)
        other.start()
        other.join(HANG)
        return "run"

    loop = client.chat("touch", tools=[touch], approve=approve)
    holder.append(loop)
    loop.run()
    assert loop.state == "cancelled" and loop.calls[0].status == "denied" and len(srv.requests) == 1


def test_interrupt_inside_a_tool_stops_the_loop(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool(safe=True)
    def slow() -> None:
        """Slow."""
        raise KeyboardInterrupt  # what ■ does to a tool running on the kernel's main thread

    calls_then_answer(srv, call("slow"), call("slow"))
    loop = client.chat("slow", tools=[slow]).run()
    assert loop.state == "cancelled" and len(srv.requests) == 1
    assert [(r.status, r.note) for r in loop.calls] == [
        ("cancelled", "interrupted while running"),
        ("cancelled", "the loop was cancelled"),
    ]


def test_async_tools_and_approver_with_the_async_driver(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool
    async def fetch(url: str) -> str:
        """Fetch."""
        await asyncio.sleep(0)  # the scenario: a tool that really awaits (yields once), not a wait
        print("fetched")
        return f"<{url}>"

    async def approve(c: Any, t: Any) -> str:
        return "run"

    calls_then_answer(srv, call("fetch", url="u"))
    loop = asyncio.run(_await(client.chat("fetch", tools=[fetch], approve=approve)))
    assert loop.state == "done" and tool_messages(srv)[0]["content"] == "printed:\nfetched\nreturned: <u>"
    # The sync driver runs an async tool too (no loop runs in this thread).
    calls_then_answer(srv, call("fetch", url="v"))
    loop = client.chat("fetch", tools=[fetch], approve=lambda c, t: "run").run()
    assert loop.state == "done" and tool_messages(srv)[0]["content"].endswith("returned: <v>")


async def _await(loop: ToolLoop) -> ToolLoop:
    return await loop


def test_cancelling_the_awaiting_task_cancels_the_loop(srv: OfflineServer, client: Client) -> None:
    flag = asyncio.Event()

    @ds_magic.tool(safe=True)
    async def hang() -> None:
        """Hang."""
        flag.set()
        await asyncio.sleep(HANG)  # the scenario: a tool that hangs until cancelled, not a wait

    calls_then_answer(srv, call("hang"))

    async def main() -> ToolLoop:
        loop = client.chat("hang", tools=[hang])
        task = asyncio.ensure_future(loop.arun())
        await asyncio.wait_for(flag.wait(), HANG)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return loop

    loop = asyncio.run(main())
    assert loop.state == "cancelled" and loop.calls[0].status == "cancelled" and len(srv.requests) == 1


def test_a_step_that_fails_ends_the_loop_with_its_error(srv: OfflineServer, client: Client) -> None:
    srv.enqueue(Script(status=402))
    loop = client.chat("x", tools=[ds_magic.tools.make_tool(lambda: 1, name="one")]).run()
    assert loop.state == "error" and isinstance(loop.error, ds_magic.InsufficientBalanceError)
    assert loop.note.startswith("step 1 ended error: 402: Insufficient Balance")


def test_batch_with_tools_runs_a_loop_per_item_in_this_thread(srv: OfflineServer, client: Client) -> None:
    where: list[str] = []

    @ds_magic.tool(safe=True)
    def square(n: int) -> int:
        """Square."""
        where.append(threading.current_thread().name)
        return n * n

    def risky(n: int) -> int:
        """Not safe: asks, and a batch has no one to ask."""
        return n

    srv.enqueue(  # concurrency=1: the items' requests come one after another
        Script(text="", tool_calls=[call("square", n=2)]),
        Script(text="four"),
        Script(text="", tool_calls=[call("risky", n=3)]),
        Script(text="denied"),
    )
    result = ds_magic.batch("n={item}", [2, 3], client=client, tools=[square, risky], concurrency=1)
    assert isinstance(result, ds_magic.tool_batch.ToolBatch) and not srv.requests  # not started
    result.run()
    assert where == [threading.current_thread().name] and result.done
    rows = result.table(as_dataframe=False)
    assert [(r["input"], r["state"], r["steps"], r["calls"]) for r in rows] == [
        (2, "done", 2, 1),
        (3, "done", 2, 1),
    ]
    assert rows[1]["note"] == "no approver: denied"
    assert result.texts == ["four", "denied"]
    assert result.usage().total_tokens == sum(lp.usage().total_tokens for lp in result.loops) > 0
    squares = [m for r in srv.requests for m in r.body["messages"] if m["role"] == "tool"]
    assert sorted(m["content"] for m in squares) == [
        "4",
        "denied by the user: the call was not run (no approver: denied)",
    ]


def test_batch_with_tools_concurrently_under_await(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool(safe=True)
    def echo(s: str) -> str:
        """Echo."""
        return s

    for _ in range(3):
        srv.enqueue(Script(text="", tool_calls=[call("echo", s="x")]))
    for _ in range(3):
        srv.enqueue(Script(text="ok"))
    result = asyncio.run(
        _await_batch(ds_magic.batch(["a", "b", "c"], client=client, tools=[echo], concurrency=3))
    )
    assert [lp.state for lp in result.loops] == ["done"] * 3 and result.texts == ["ok"] * 3
    assert len(srv.requests) == 6


async def _await_batch(result: Any) -> Any:
    return await result


def test_a_prompt_directive_scripts_the_tool_calls(srv: OfflineServer, client: Client) -> None:
    """For notebooks and demos: ``[[offline tool=NAME:{json}]]`` in the prompt (no script queued)."""
    got: list[tuple[int, int]] = []

    @ds_magic.tool(safe=True)
    def add(a: int, b: int) -> int:
        """Add."""
        got.append((a, b))
        return a + b

    prompt = 'Add [[offline tool=add:{"a":1,"b":2} tool=add:{"a":3,"b":4}]] please'
    loop = client.chat(prompt, tools=[add]).run()
    assert loop.state == "done" and got == [(1, 2), (3, 4)] and len(srv.requests) == 2
    assert loop.steps[0].finish_reason == "tool_calls" and loop.steps[0].text == ""
    assert loop.steps[1].finish_reason == "stop" and loop.text  # after the results: a text answer
    bad = client.chat("x [[offline tool=add:{a}]]", tools=[add]).run()
    assert bad.state == "error" and "the arguments are not JSON" in str(bad.error)


def test_concurrent_async_tools_that_print_leave_stdout_as_it_was(srv: OfflineServer, client: Client) -> None:
    """Interleaved captures would restore each other's buffers: sys.stdout must come back whole."""
    import sys

    gate = asyncio.Event()
    inside: list[int] = []

    @ds_magic.tool(safe=True)
    async def wait_a_bit(n: int) -> int:
        """Wait until both are inside, printing."""
        print("start", n)
        inside.append(n)
        if len(inside) == 2:
            gate.set()
        await asyncio.wait_for(gate.wait(), HANG)
        print("end", n)
        return n

    for n in (1, 2):
        srv.enqueue(Script(text="", tool_calls=[call("wait_a_bit", n=n)]))
    srv.enqueue(Script(text="ok"), Script(text="ok"))
    before = sys.stdout
    result = asyncio.run(
        _await_batch(ds_magic.batch(["a", "b"], client=client, tools=[wait_a_bit], concurrency=2))
    )
    assert sys.stdout is before and sorted(inside) == [1, 2]
    assert [lp.state for lp in result.loops] == ["done", "done"]
    outputs = sorted(rec.output for lp in result.loops for rec in lp.calls)
    assert any("start" in o and "end" in o for o in outputs)  # one of them captured its own prints


def test_bad_parameters_and_secrets_fail_at_once_not_at_run(srv: OfflineServer, client: Client) -> None:
    one = ds_magic.tools.make_tool(lambda: 1, name="one")
    with pytest.raises(ValueError, match="temperature must be between 0 and 2"):
        client.chat("x", tools=[one], temperature=5)
    with pytest.raises(ds_magic.SecretInPromptError):
        client.chat(f"my key is {KEY}", tools=[one])
    with pytest.raises(ValueError, match="messages is None"):
        client.chat(None, tools=[one])
    assert not srv.requests


def test_a_result_that_looks_like_a_secret_is_not_sent(srv: OfflineServer, client: Client) -> None:
    @ds_magic.tool(safe=True)
    def env() -> dict[str, str]:
        """The environment."""
        return {"DEEPSEEK_API_KEY": KEY, "HOME": "/home/me"}

    calls_then_answer(srv, call("env"))
    loop = client.chat("env?", tools=[env]).run()
    (rec,) = loop.calls
    assert KEY in (rec.result or "")  # kept here, for the user
    sent = tool_messages(srv)[0]["content"]
    assert KEY not in json.dumps([r.body for r in srv.requests])
    assert sent == (
        "not sent: the result looks like it holds the configured DeepSeek API key (line 1); "
        "it was kept here, not sent (allow_secrets=True sends it)"
    )
    assert rec.withheld and loop.state == "done"


def test_a_tool_loop_against_a_plain_openai_compatible_server() -> None:
    """No thinking, no DeepSeek-only fields: the loop works the same (dialect.py drops them)."""

    @ds_magic.tool(safe=True)
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    with OfflineServer(dialect="openai") as plain:
        plain.enqueue(Script(text="", tool_calls=[call("add", a=1, b=1)]), Script(text="2"))
        loop = Client(api_key=KEY, base_url=plain.url, dialect="openai").chat("1+1", tools=[add]).run()
        assert loop.state == "done" and loop.text == "2"
        assert [m["content"] for m in plain.requests[-1].body["messages"] if m["role"] == "tool"] == ["2"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_the_tool_directive_parser_takes_any_prompt_text(value: str) -> None:
    """Prompt text is untrusted: ``tool=...`` gives calls with JSON arguments, or one ValueError line."""
    from ds_magic.testing.script import parse_directives

    try:
        overrides, _ = parse_directives(f"hi [[offline tool={value}]]")
    except ValueError as exc:
        assert "\n" not in str(exc)
    else:
        for c in overrides.get("tool_calls", []):
            assert c["name"] and isinstance(
                json.loads(c["arguments"]), (dict, list, str, int, float, bool, type(None))
            )
