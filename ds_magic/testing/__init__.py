"""An offline stand-in for the DeepSeek API: a real HTTP server on 127.0.0.1. It is not a model.

Tests, notebooks and the demo use it when there is no API key. It follows the wire format in
docs/deepseek-api.md (SSE chunks, usage on the finish chunk, documented errors, keep-alives, prefix
completion on /beta, cache-hit counts) and can be scripted to misbehave::

    from ds_magic.testing import OfflineServer, Script

    with OfflineServer() as server:              # or server = OfflineServer().start(); server.stop()
        server.enqueue(Script(text="Paris.", reasoning="The user asks about France."))
        client = Client(api_key="sk-anything", base_url=server.url)
        ...
        server.requests[-1].body                 # what the client sent
        server.wait_for_disconnect(2)            # after a cancel: when the server saw the socket close

Each /chat/completions request that passes auth and validation takes the next queued ``Script``;
with none queued it gets the default answer (a short Markdown text that says it is an offline
stand-in). Other processes can drive a running server over HTTP: ``POST /_offline/script`` (a JSON
object, or a list, of Script fields), ``GET /_offline/requests`` (Authorization shown as ``****``),
``GET /_offline/disconnects``, ``GET /_offline/state``, ``POST /_offline/reset``.

A person in a notebook can put ``[[offline key=value ...]]`` in the prompt (the last user message):
tokens=N, tps=F, ttft=F, keepalives=N, interval=F, fault=NAME, fault_after=N, status=N, finish=REASON,
think=0/1, tool=NAME or tool=NAME:{"json":"without-spaces"} (repeatable: the answer to that user message
calls those tools; after their results it answers in text). The directive is removed from the echoed prompt.

Faults (``Script(fault=..., fault_after=N)``; N counts data events, the first role chunk included; an
N past the end of the stream means after the finish chunk, just before [DONE]):

- ``drop``: close the socket after N events (no terminating chunk, no [DONE]). With ``fault_after=0``
  and ``ttft``/``keepalives``, this is "queued, then closed without an answer".
- ``drop_before_headers``: read the request and close without any response.
- ``stall``: after N events send nothing more, keep the connection open until the client leaves.
- ``stall_keepalive``: like stall, but send ``: keep-alive`` every ``keepalive_interval``.
- ``keepalive_after_answer``: send the whole answer and the finish chunk, then keep-alives forever,
  never [DONE].
- ``eof_no_done``: end the chunked body cleanly after N events: no finish chunk, no [DONE].
- ``malformed_json``: after N events send ``data: {"id": broken`` and end the body.
- ``inband_error``: after N events send ``data: {"error": {...}}`` and end the body (no [DONE]).
- ``html_error``: answer ``status`` (e.g. 502, or 200) with an HTML page.
- ``plain_text_error``: answer ``status`` (422 when 200) with a text/plain deserialization message.
- ``wrong_content_type``: a streaming request gets 200 ``application/json`` (a whole completion).
- ``split_utf8``: every byte of the stream is its own chunk, so characters are split across writes.
- ``big_event``: insert one data event whose content has ``fault_size`` bytes (5 MB) after N events.
- ``invalid_utf8``: insert one data event whose content holds the raw bytes ``ff fe`` after N events.

Besides ``requests``, ``disconnects``, ``completed`` (streams that wrote [DONE], and whole JSON answers),
``active``/``max_active`` and ``wait_for_disconnect()``, the server has ``connections`` (TCP connections
accepted; ``RecordedRequest.connection`` says which one a request came on) and ``queued``.
``OfflineServer(tokens_per_second=..., ttft=...)`` sets the pacing of requests that have no script.

``python -m ds_magic.testing --port 8765 [--tps 40] [--ttft 0.3]`` runs it standalone (Ctrl-C stops it).
"""

from __future__ import annotations

from .records import Disconnect, RecordedRequest
from .script import FAULTS, FINISH_REASONS, Script
from .server import OfflineServer
from .validate import LEGACY_MODELS, V4_MODELS
from .wire import DEFAULT_MARK, estimate_tokens, split_tokens

__all__ = [
    "DEFAULT_MARK",
    "FAULTS",
    "FINISH_REASONS",
    "LEGACY_MODELS",
    "V4_MODELS",
    "Disconnect",
    "OfflineServer",
    "RecordedRequest",
    "Script",
    "estimate_tokens",
    "split_tokens",
]
