"""The offline server's part in schema= and compare(): Script.match routes a script to the requests it
matches (over HTTP too), and JSON mode answers take the shape of the schema a system prompt states."""

from __future__ import annotations

import json

import httpx
import pytest
from offline_helpers import KEY

from ds_magic import Client
from ds_magic.structured import as_schema
from ds_magic.testing import Script

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["a", "b", "c", "d"]},
        "n": {"type": "integer", "minimum": 3},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "ok": {"type": "boolean"},
    },
    "required": ["label", "n", "tags", "ok"],
}


def ask(srv, prompt: str, **kw) -> str:
    return Client(api_key=KEY, base_url=srv.url).chat(prompt, thinking=False, **kw).text


def test_a_matching_script_waits_for_its_request(srv):
    srv.enqueue(Script(text="for b", match=r"\bb\b"), Script(text="for anyone"))
    assert ask(srv, "a") == "for anyone"  # skips the script that does not match
    assert ask(srv, "b") == "for b"
    assert srv.queued == 0


def test_match_sees_the_model_and_every_message(srv):
    srv.enqueue(Script(text="pro, careful", match=r"(?s)^deepseek-v4-pro\nBe careful\.\nhi$"))
    assert "offline stand-in" in ask(srv, "hi", model="deepseek-v4-pro")  # no system prompt: no match
    assert ask(srv, "hi", model="deepseek-v4-pro", system="Be careful.") == "pro, careful"


def test_match_over_http_and_a_bad_pattern(srv):
    url = f"{srv.url}/_offline/script"
    assert httpx.post(url, json={"text": "x", "match": "needle"}).status_code == 200
    assert ask(srv, "a needle here") == "x"
    bad = httpx.post(url, json={"text": "x", "match": "("})
    assert bad.status_code == 400 and "match is not a regular expression" in bad.text
    with pytest.raises(ValueError, match="match is not a regular expression"):
        Script(match="[")


def test_json_mode_answers_the_shape_of_the_stated_schema(srv):
    schema = as_schema(SCHEMA)
    labels = set()
    for i in range(12):
        text = ask(srv, f"question {i}", system=schema.system_prompt(), response_format="json_object")
        value = schema.validate(json.loads(text))
        labels.add(value["label"])
    assert len(labels) > 1  # picked per request, not always the first


def test_the_same_request_gets_the_same_shaped_answer_and_variants_differ(srv):
    system = as_schema(SCHEMA).system_prompt()
    answers = {
        (model, t): ask(
            srv, "same question", system=system, response_format="json_object", model=model, temperature=t
        )
        for model in ("deepseek-flash", "deepseek-v4-pro")
        for t in (0.0, 0.5, 1.0)
    }
    again = ask(srv, "same question", system=system, response_format="json_object", temperature=0.5)
    assert again == answers[("deepseek-flash", 0.5)]
    assert len(set(answers.values())) > 1


def test_without_json_mode_or_without_a_schema_nothing_changes(srv):
    system = as_schema(SCHEMA).system_prompt()
    assert "offline stand-in" in ask(srv, "q", system=system)  # text mode: the usual answer
    generic = json.loads(ask(srv, "json please", response_format="json_object"))
    assert generic["offline"] is True  # JSON mode with no schema: the generic object
