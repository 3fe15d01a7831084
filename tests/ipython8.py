"""The IPython 8 interpreter of the error tests (``.venv-ipython8``, made by scripts/ipython8-venv).

CI sets ``DS_MAGIC_REQUIRE_IPYTHON8=1``: a missing venv fails there instead of skipping, as
``DS_MAGIC_REQUIRE_LITELLM`` does for LiteLLM.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IPYTHON8 = Path(__file__).resolve().parents[1] / ".venv-ipython8" / "bin" / "python"


def ipython8_python() -> str:
    """The venv's python, or skip (fail under DS_MAGIC_REQUIRE_IPYTHON8)."""
    if IPYTHON8.exists():
        return str(IPYTHON8)
    if os.environ.get("DS_MAGIC_REQUIRE_IPYTHON8"):
        pytest.fail(f"{IPYTHON8} is missing: run scripts/ipython8-venv (CI requires the IPython 8 run)")
    pytest.skip("no .venv-ipython8 (scripts/ipython8-venv makes it)")
