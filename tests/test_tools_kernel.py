"""The core tool loop in a real ipykernel (issue 16): tools run on the kernel's main thread, where user
code runs, with their prints captured; ■ inside a slow tool stops the loop, marked, the cell intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel_harness import KernelSession
from offline_helpers import wait_until

from ds_magic.testing import OfflineServer, Script

pytestmark = pytest.mark.kernel

HANG = 30.0


def tool_call(name: str, **arguments: object) -> dict[str, object]:
    return {"name": name, "arguments": json.dumps(arguments)}


def test_an_awaited_loop_runs_its_tool_on_the_kernels_main_thread(
    srv: OfflineServer, module_kernel: KernelSession
) -> None:
    srv.enqueue(Script(text="", tool_calls=[tool_call("where", x=1)]), Script(text="fine"))
    code = '''
import threading, ds_magic
seen = []
@ds_magic.tool(safe=True)
def where(x: int) -> str:
    """Where it runs."""
    print("inside the tool")
    seen.append(threading.current_thread().name)
    return "ran"
loop = ds_magic.Client().chat("go", tools=[where])
await loop
print(ds_magic.__file__, loop.state, loop.text, seen, repr(loop.calls[0].output))
'''
    res = module_kernel.run(code, timeout=HANG).raise_for_error()
    line = res.stdout.strip()
    assert line.startswith(str(Path(__file__).resolve().parents[1] / "ds_magic"))  # this worktree's
    assert line.endswith("done fine ['MainThread'] 'inside the tool\\n'")
    assert res.stdout.count("inside the tool") == 1  # captured into the call, not the cell's output
    assert [m["content"] for m in srv.requests[-1].body["messages"] if m["role"] == "tool"] == [
        "printed:\ninside the tool\nreturned: ran"
    ]


def test_interrupt_inside_a_slow_tool_stops_the_loop(
    srv: OfflineServer, module_kernel: KernelSession, tmp_path: Path
) -> None:
    srv.enqueue(Script(text="", tool_calls=[tool_call("slow"), tool_call("slow")]))
    marker = tmp_path / "started"
    code = f'''
import time, pathlib, ds_magic
@ds_magic.tool(safe=True)
def slow() -> None:
    """Slow: runs until interrupted."""
    pathlib.Path({str(marker)!r}).write_text("started")
    while True:
        time.sleep(0.02)  # the scenario (a tool that runs until ■), not a wait
loop = ds_magic.Client().chat("slow", tools=[slow])
await loop
print("after:", loop.state, [(c.status, c.note) for c in loop.calls])
'''
    msg = module_kernel.execute(code)
    assert wait_until(marker.exists, HANG), "the tool never started"
    module_kernel.interrupt()  # ■
    res = module_kernel.result(msg, timeout=HANG)
    assert res.status == "ok", res.error  # the cell did not crash
    assert res.stdout.strip() == (
        "after: cancelled [('cancelled', 'interrupted while running'), ('cancelled', 'the loop was cancelled')]"
    )
    assert len(srv.requests) == 1  # nothing was sent after the interrupt
