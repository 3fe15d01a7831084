"""The real-kernel harness itself, checked through a real IPython kernel (kernel_harness.py)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kernel_harness import KernelDiedError, KernelSession, KernelTimeoutError

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def shared() -> Iterator[KernelSession]:
    """One kernel for the cheap checks that leave no state behind that matters to the others."""
    with KernelSession() as k:
        yield k


def test_expression_result(shared: KernelSession) -> None:
    r = shared.run("1 + 1")
    assert r.status == "ok"
    assert r.result_text == "2"
    assert isinstance(r.execution_count, int)
    assert r.error is None
    # shell reply and iopub idle travel on different sockets: either may be seen first
    assert r.sent_at <= r.replied_at and r.sent_at <= r.idle_at
    assert shared.evaluate("2 ** 10") == "1024"


def test_print_goes_to_stdout_and_stderr(shared: KernelSession) -> None:
    r = shared.run("import sys\nprint('hello')\nprint('oops', file=sys.stderr)")
    assert r.stdout == "hello\n"
    assert r.stderr == "oops\n"
    assert r.result_text is None
    assert all(m["parent_header"]["msg_id"] == r.msg_id for m in r.outputs)


def test_exception_gives_error_status(shared: KernelSession) -> None:
    r = shared.run("raise ValueError('bad value')")
    assert r.status == "error"
    assert r.error is not None
    assert (r.error.ename, r.error.evalue) == ("ValueError", "bad value")
    with pytest.raises(AssertionError, match="ValueError"):
        r.raise_for_error()


def test_queued_requests_all_reply_in_order(shared: KernelSession) -> None:
    # The sleeps are the scenario (cells that take a moment, so they queue), not waits.
    ids = [shared.execute(f"import time; time.sleep(0.02); print({i})") for i in range(5)]
    results = [shared.result(mid, timeout=10) for mid in ids]
    assert [r.status for r in results] == ["ok"] * 5
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(5)]
    first = results[0].execution_count
    assert first is not None
    assert [r.execution_count for r in results] == list(range(first, first + 5))
    replied = [r.replied_at for r in results]
    assert replied == sorted(replied)


def test_error_aborts_the_queued_requests(shared: KernelSession) -> None:
    failing = shared.execute("import time; time.sleep(0.1); 1 / 0")  # the sleep: the scenario, a slow cell
    queued = shared.execute("print('never')")
    assert shared.result(failing, 10).error.ename == "ZeroDivisionError"  # type: ignore[union-attr]
    aborted = shared.result(queued, 10)
    assert aborted.status == "aborted"
    assert aborted.stdout == ""
    assert shared.run("print('back')").stdout == "back\n"


def test_kernel_info(shared: KernelSession) -> None:
    reply = shared.kernel_info(timeout=10)
    assert reply["msg_type"] == "kernel_info_reply"
    assert reply["content"]["status"] == "ok"
    assert reply["content"]["language_info"]["name"] == "python"


def test_button_click_runs_on_click(shared: KernelSession) -> None:
    r = shared.run(
        "import ipywidgets as widgets\n"
        "clicks = []\n"
        "button = widgets.Button(description='Harness button')\n"
        "button.on_click(lambda b: clicks.append(b.description))\n"
        "display(button)"
    ).raise_for_error()
    [model_id] = shared.find_widgets("ButtonModel", description="Harness button")
    assert shared.wait_for_widget(description="Harness button", timeout=1) == model_id
    view = r.displays()[0]["content"]["data"]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == model_id
    assert shared.widget_state(model_id)["_model_module"] == "@jupyter-widgets/controls"

    shared.wait_idle(shared.click(model_id), timeout=10)
    shared.wait_idle(shared.click(model_id), timeout=10)
    assert shared.run("print(len(clicks), clicks[0])").stdout == "2 Harness button\n"

    shared.run("button.description = 'Renamed'").raise_for_error()
    assert shared.widget_state(model_id)["description"] == "Renamed"
    assert shared.find_widgets(description="Harness button") == []

    shared.run("button.close()").raise_for_error()
    assert model_id in {m["content"]["comm_id"] for m in shared.comm_closes()}
    assert model_id not in shared.find_widgets(open_only=True)


def test_set_widget_state_reaches_the_kernel(shared: KernelSession) -> None:
    shared.run(
        "import ipywidgets as widgets\ntext = widgets.Text(description='Harness text')"
    ).raise_for_error()
    model_id = shared.wait_for_widget(model_name="TextModel", description="Harness text", timeout=5)
    shared.wait_idle(shared.set_widget_state(model_id, {"value": "typed"}), timeout=10)
    assert shared.evaluate("text.value") == "'typed'"


def test_iopub_bytes_grow(shared: KernelSession) -> None:
    mark = shared.mark()
    assert shared.iopub_bytes(mark) == 0
    shared.run("print('x' * 10_000)")
    assert shared.iopub_bytes(mark) >= 10_000
    assert 10_000 <= shared.iopub_bytes(mark, msg_types={"stream"}) < 10_200
    assert shared.iopub_bytes(mark, msg_types={"comm_msg"}) == 0
    assert shared.iopub_bytes() > shared.iopub_bytes(mark)


def test_subshell_runs_code_on_its_own_thread(shared: KernelSession) -> None:
    if not shared.supports_subshells:
        pytest.skip("kernel without subshells (ipykernel < 7)")
    subshell = shared.create_subshell()
    assert subshell in shared.list_subshells()
    r = shared.run("import threading; threading.current_thread().name", subshell_id=subshell)
    assert r.result_text is not None and "subshell" in r.result_text
    shared.delete_subshell(subshell)
    assert subshell not in shared.list_subshells()


def test_interrupt_stops_a_sleeping_cell_quickly(kernel: KernelSession) -> None:
    # The 10 s sleep is the scenario (a long cell), not a wait.
    mid = kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(10)")
    kernel.wait_stdout(mid, "sleeping", timeout=10)
    kernel.interrupt()
    r = kernel.result(mid, timeout=5)  # inside the 10 s: the interrupt ended the cell
    assert r.status == "error"
    assert r.error is not None and r.error.ename == "KeyboardInterrupt"
    assert kernel.run("'still alive'").result_text == "'still alive'"


def test_a_slow_cell_times_out_instead_of_hanging(kernel: KernelSession) -> None:
    # The 10 s sleep is the scenario; had the 0.5 s timeout not fired, the cell would end "ok".
    with pytest.raises(KernelTimeoutError, match="timed out after 0.5 s") as info:
        kernel.run("import time\ntime.sleep(10)", timeout=0.5)
    assert "execute_input" in str(info.value)  # the message says what the kernel last did
    [busy] = kernel.iopub_messages(msg_type="execute_input", since=0)[-1:]
    kernel.interrupt()
    assert kernel.result(busy["parent_header"]["msg_id"], 5).status == "error"


def test_dead_kernel_fails_fast_and_cleans_up(kernel: KernelSession) -> None:
    # Fast: a KernelDiedError, not the KernelTimeoutError the 30 s wait would end in.
    with pytest.raises(KernelDiedError, match="not running"):
        kernel.run("import os; os._exit(3)", timeout=30)
    tmp = kernel._tmp
    assert tmp is not None and tmp.exists()
    kernel.close()
    assert not tmp.exists()


def test_env_reaches_the_kernel(
    kernel_factory: Callable[..., KernelSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DS_HARNESS_DROPPED", "inherited")
    monkeypatch.setenv("DS_HARNESS_KEPT", "inherited")
    k = kernel_factory(
        env={
            "DEEPSEEK_API_KEY": "sk-harness",
            "DEEPSEEK_BASE_URL": "http://127.0.0.1:9",
            "DS_HARNESS_DROPPED": None,
        }
    )
    assert k.evaluate("__import__('os').environ.get('DS_HARNESS_DROPPED')") == "None"
    assert k.evaluate("__import__('os').environ['DS_HARNESS_KEPT']") == "'inherited'"
    assert k.evaluate("__import__('os').environ['DEEPSEEK_API_KEY']") == "'sk-harness'"
    assert k.evaluate("__import__('os').environ['DEEPSEEK_BASE_URL']") == "'http://127.0.0.1:9'"
    assert k.evaluate("__import__('sys').executable") == repr(sys.executable)


@pytest.mark.skipif(os.name != "posix", reason="uses a shell script as the interpreter")
def test_broken_interpreter_fails_fast(kernel_factory: Callable[..., KernelSession], tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no ipykernel here' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    # Fast: a KernelDiedError with the interpreter's stderr, not a 30 s startup timeout.
    with pytest.raises(KernelDiedError, match="no ipykernel here"):
        kernel_factory(python=str(fake), startup_timeout=30)
