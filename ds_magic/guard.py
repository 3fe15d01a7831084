"""Outbound guard: refuse to send a prompt that looks like it holds a secret.

Notebooks are full of credentials (a cell that set a token, a pasted config file), and a prompt
built with ``{name}`` interpolation can carry one to DeepSeek without the user noticing. Each
detector is named and specific (key formats with a fixed prefix, private-key armour, the configured
DeepSeek key itself) to keep false positives rare; a user who means it passes ``--allow-secrets``
(``allow_secrets=True``). Messages name the kind of secret and the line, never the secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DETECTORS", "Finding", "find_secrets", "check_messages", "mask_key"]

# (name, pattern). Formats from the issuers' documentation of their key prefixes.
DETECTORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key block", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("API key (sk-…)", re.compile(r"(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}")),
    ("AWS access key id", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])")),
    ("GitHub token", re.compile(r"(?<!\w)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("Slack token", re.compile(r"(?<!\w)xox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}")),
    ("Stripe secret key", re.compile(r"(?<!\w)(?:sk|rk)_live_[0-9A-Za-z]{20,}")),
)


@dataclass(frozen=True)
class Finding:
    """One suspected secret: what kind, and where (1-based line of the text it was found in)."""

    kind: str
    line: int
    where: str = "prompt"

    def describe(self) -> str:
        return f"a {self.kind} ({self.where}, line {self.line})"


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def find_secrets(text: str, *, api_key: str | None = None, where: str = "prompt") -> list[Finding]:
    """Every suspected secret in ``text``, in order of position (one finding per position)."""
    hits: dict[int, Finding] = {}
    if api_key and len(api_key) >= 8:
        i = text.find(api_key)
        if i >= 0:
            hits[i] = Finding("the configured DeepSeek API key", _line_of(text, i), where)
    for kind, pattern in DETECTORS:
        for m in pattern.finditer(text):
            hits.setdefault(m.start(), Finding(kind, _line_of(text, m.start()), where))
    return [hits[i] for i in sorted(hits)]


def check_messages(messages: Iterable[tuple[str, str]], *, api_key: str | None = None) -> list[Finding]:
    """Findings in ``(where, text)`` pairs, e.g. ``[("prompt", ...), ("system prompt", ...)]``."""
    found: list[Finding] = []
    for where, text in messages:
        found += find_secrets(text, api_key=api_key, where=where)
    return found


def mask_key(key: str | None) -> str:
    """How an API key is shown anywhere (repr, ``%deepseek config``): ``****`` and, for a key long
    enough that four characters give nothing away, its last four. ``""`` when there is no key."""
    if not key:
        return ""
    return "****" + (key[-4:] if len(key) >= 16 else "")
