"""Approval asked with ``input()``: terminal IPython (a real ``python -m IPython`` process, stdin piped)
and a kernel in block mode (the harness answers the kernel's ``input_request`` as a frontend would)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from offline_helpers import KEY

from ds_magic.testing import Script

WEATHER = """
def get_weather(city: str) -> str:
    '''The weather in a city now.

    Args:
        city: The city's name.
    '''
    print('tool ran for', city)
    return 'sunny in ' + city
"""


def weather_call() -> Script:
    return Script(text="", tool_calls=[{"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}])


@pytest.mark.parametrize(("answer", "ran"), [("r", True), ("d", False)])
def test_terminal_ipython_asks_on_stdin(srv, tmp_path, answer, ran):
    srv.enqueue(weather_call(), Script(text="Answer after the tool."))
    script = tmp_path / "cell.py"
    script.write_text(
        WEATHER
        + "ip = get_ipython(); ip.run_line_magic('load_ext', 'ds_magic')\n"
        + "ip.run_cell_magic('deepseek', '--tools get_weather', 'Weather in Paris?')\n"
    )
    env = {
        "DEEPSEEK_API_KEY": KEY,
        "DEEPSEEK_BASE_URL": srv.url,
        "PATH": "/usr/bin:/bin",
        "IPYTHONDIR": str(tmp_path),
    }
    res = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--quick", "--colors=NoColor", str(script)],
        input=answer + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert 'The model wants to call get_weather(city="Paris")' in out
    assert "Run it? [r]un / [d]eny / [a]lways allow get_weather:" in out
    assert ("tool ran for Paris" in out) is ran
    assert "Answer after the tool." in out
    sent = [m for m in srv.requests[1].body["messages"] if m["role"] == "tool"][0]["content"]
    assert sent.startswith("printed:\ntool ran for Paris") if ran else sent.startswith("denied by the user")


@pytest.mark.kernel
def test_block_mode_asks_with_input_request(srv, module_kernel):
    k = module_kernel
    k.run(WEATHER + "\ntool_log = []", timeout=20).raise_for_error()
    k.run("%config DeepSeekMagics.wait_mode = 'block'").raise_for_error()
    try:
        srv.enqueue(weather_call(), Script(text="Sunny, says the tool."))
        mid = k.execute("%%deepseek --tools get_weather\nWeather?", allow_stdin=True)
        request = k.wait_for(
            lambda: next((m for m in k.stdin_messages() if m["msg_type"] == "input_request"), None),
            30,
            what="the kernel's input_request",
        )
        assert "[r]un / [d]eny / [a]lways allow get_weather" in request["content"]["prompt"]
        k.input_reply("a")
        res = k.result(mid, 30).raise_for_error()
        assert "tool ran for Paris" in str(srv.requests[1].body["messages"])
        assert "Sunny, says the tool." in "".join(
            str(m["content"]["data"].get("text/plain", "")) for m in res.outputs if "data" in m["content"]
        )
    finally:
        k.run("%config DeepSeekMagics.wait_mode = 'auto'")
        k.run("from ds_magic.jupyter.tool_cell import KERNEL_ALLOWED; KERNEL_ALLOWED.clear()")
