"""``python -m ds_magic.testing``: run the offline DeepSeek stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import OfflineServer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ds_magic.testing",
        description="Offline stand-in for the DeepSeek API (not a model): speaks the wire format on 127.0.0.1.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (0 = any free port; default 8765)")
    parser.add_argument(
        "--tps", type=float, default=40.0, help="tokens per second (default 40; 0 = no pacing)"
    )
    parser.add_argument("--ttft", type=float, default=0.3, help="seconds to the first token (default 0.3)")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")
    parser.add_argument("--legacy", action="store_true", help="also accept deepseek-chat / deepseek-reasoner")
    parser.add_argument(
        "--dialect",
        choices=("deepseek", "openai"),
        default="deepseek",
        help="openai: act as a plain OpenAI-compatible server (no /beta, DeepSeek-only fields get 422)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = parser.parse_args(argv)

    server = OfflineServer(
        args.host,
        args.port,
        api_key=args.api_key,
        legacy=args.legacy,
        dialect=args.dialect,
        tokens_per_second=args.tps or None,
        ttft=max(args.ttft, 0.0),
        verbose=not args.quiet,
    )
    try:
        server.start()
    except OSError as exc:
        print(f"ds_magic.testing: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"ds_magic offline stand-in for the DeepSeek API (not a model) on {server.url} "
        f"- use DEEPSEEK_BASE_URL={server.url} (any non-empty API key); Ctrl-C stops it",
        flush=True,
    )
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}, not only on loopback", file=sys.stderr, flush=True)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # also when started in the background, where SIGINT is ignored
    try:
        while not stop.wait(3600):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
