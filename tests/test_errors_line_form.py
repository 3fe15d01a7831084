"""The ``%deepseek [options] PROMPT`` splitter (jupyter/line_form.py): a table and a property test.

The line is typed by the user, but a prompt can be anything pasted, so the splitter is held to:
the options come out as the parser would read them, and the prompt comes out exactly as typed.
"""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ds_magic.jupyter.line_form import LineError, close_subcommand, split_line


@pytest.mark.parametrize(
    ("line", "options", "prompt", "explicit"),
    [
        ("what's up?", [], "what's up?", False),
        ("--dry-run x", ["--dry-run"], "x", False),
        ('-s "be brief" -t 0.5 say "hi"', ["-s", "be brief", "-t", "0.5"], 'say "hi"', False),
        ("-t -0.5 cold", ["-t", "-0.5"], "cold", False),  # a value may start with "-"
        ("--model=deepseek-v4-pro hi", ["--model=deepseek-v4-pro"], "hi", False),
        ("-mdeepseek-v4-pro hi", ["-mdeepseek-v4-pro"], "hi", False),
        ("--new -- history of Rome", ["--new"], "history of Rome", True),
        ("-- -5 degrees", [], "-5 degrees", True),
        ("--no-history", ["--no-history"], "", False),
        ("  spaced   out  ", [], "spaced   out", False),
    ],
)
def test_split_line(line, options, prompt, explicit):
    form = split_line(line)
    assert (form.options, form.prompt, form.explicit) == (options, prompt, explicit)


def test_an_unclosed_quote_in_the_options_is_a_line_error():
    with pytest.raises(LineError, match="unclosed quote"):
        split_line('-s "be brief hi')


@pytest.mark.parametrize(
    ("word", "near"),
    [("histroy", "history"), ("History", "history"), ("stat", "stats"), ("hello", None), ("what", None)],
)
def test_close_subcommand(word, near):
    names = ["history", "chats", "reset", "fork", "export", "import", "models", "key", "stats", "cache"]
    assert close_subcommand(word, names) == near


VALUE_OPTIONS = ["-m", "--model", "-s", "--system", "-c", "-t", "--max-tokens", "--stop", "-o"]
FLAGS = ["--new", "--no-history", "--dry-run", "--json", "--raw", "--bg", "--thinking"]
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
prompts = text.map(str.strip).filter(lambda p: p != "" and not p.startswith("-"))


@given(
    st.lists(
        st.one_of(
            st.sampled_from(FLAGS).map(lambda f: [f]),
            st.tuples(st.sampled_from(VALUE_OPTIONS), text).map(list),
        ),
        max_size=4,
    ),
    prompts,
)
def test_options_and_prompt_round_trip(groups, prompt):
    words = [w for group in groups for w in group]
    line = f"{shlex.join(words)} {prompt}" if words else prompt
    form = split_line(line)
    assert form.options == words
    assert form.prompt == prompt


@given(text)
def test_any_line_splits_or_says_why(line):
    try:
        form = split_line(line)
    except LineError:
        return
    assert form.prompt == "" or form.prompt in line
