"""The outbound guard: prompts that look like they hold a secret are not sent unless allowed.

Through real sockets: a refused prompt never reaches the offline server; an allowed one does.
"""

from __future__ import annotations

import pytest
from offline_helpers import KEY

import ds_magic
from ds_magic import Client, SecretInPromptError
from ds_magic.guard import find_secrets
from ds_magic.testing import Script

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAuF7...\n-----END RSA PRIVATE KEY-----"
SAMPLES = {
    "private key block": PEM,
    "API key (sk-…)": "sk-proj-" + "a1B2c3D4" * 4,
    "AWS access key id": "AKIA" + "ABCDEFGHIJKLMNOP",
    "GitHub token": "ghp_" + "x" * 36,
    "Slack token": "xoxb-123456789012-abcdefghij",
    "Google API key": "AIza" + "B" * 35,
    "Stripe secret key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
}
HARMLESS = [
    "Explain what an API key is and where sk- prefixes come from.",
    "def f(): return 'ghp_' + token  # build a header",
    "AKIA is the prefix of AWS access key ids",
    "-----BEGIN CERTIFICATE-----",
    "The sky-blue task-list has 12 items",
]


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_each_detector_finds_its_secret_and_says_where(kind):
    text = f"line one\nhere it is: {SAMPLES[kind]}\n"
    found = find_secrets(text)
    assert [f.kind for f in found] == [kind]
    assert found[0].line == 2


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_text_is_not_flagged(text):
    assert find_secrets(text) == []


def test_the_configured_key_is_found_whatever_its_shape():
    key = "my-own-key-without-a-known-format-1234"
    found = find_secrets(f"please debug: headers = {{'Authorization': '{key}'}}", api_key=key)
    assert [f.kind for f in found] == ["the configured DeepSeek API key"]


def test_refused_prompt_is_not_sent_and_the_message_never_echoes_it(srv):
    secret = SAMPLES["GitHub token"]
    client = Client(api_key=KEY, base_url=srv.url)
    with pytest.raises(SecretInPromptError) as info:
        client.chat(f"Why does this fail?\ntoken = '{secret}'")
    err = info.value
    for shown in (str(err), repr(err), repr(err.findings)):
        assert secret not in shown and secret[:12] not in shown
    assert "GitHub token" in str(err) and "line 2" in str(err)
    assert "allow_secrets=True" in str(err) and "\n" not in str(err)
    assert isinstance(err, ds_magic.DeepSeekError)
    assert srv.requests == []


def test_own_key_in_prompt_system_or_messages_is_refused(srv):
    client = Client(api_key=KEY, base_url=srv.url)
    with pytest.raises(SecretInPromptError, match="configured DeepSeek API key"):
        client.chat(f"my key is {KEY}")
    with pytest.raises(SecretInPromptError, match="system prompt"):
        client.chat("hi", system=f"You have access with {PEM}")
    with pytest.raises(SecretInPromptError, match="message 2"):
        client.chat([{"role": "user", "content": "hi"}, {"role": "user", "content": PEM}])
    assert srv.requests == []


def test_allow_secrets_sends_it(srv):
    srv.enqueue(Script(text="ok", reasoning=""))
    client = Client(api_key=KEY, base_url=srv.url)
    secret = SAMPLES["AWS access key id"]
    assert client.chat(f"rotate {secret}", allow_secrets=True).text == "ok"
    assert secret in srv.requests[0].body["messages"][-1]["content"]


def test_batch_checks_every_item_before_sending_anything(srv):
    client = Client(api_key=KEY, base_url=srv.url)
    items = ["fine", "also fine", f"oops {SAMPLES['Slack token']}"]
    with pytest.raises(SecretInPromptError, match="item 2"):
        ds_magic.batch("Summarise: {item}", items, client=client, progress=False)
    assert srv.requests == []


def test_batch_checks_its_system_prompt_before_sending_anything(srv):
    client = Client(api_key=KEY, base_url=srv.url)
    with pytest.raises(SecretInPromptError, match="system prompt"):
        ds_magic.batch(["a", "b"], client=client, system=f"use {SAMPLES['GitHub token']}", progress=False)
    assert srv.requests == []


def test_magic_refuses_and_allow_secrets_passes(srv, kernel_factory):
    k = kernel_factory(env={"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": srv.url})
    secret = SAMPLES["API key (sk-…)"]
    k.run(f"tok = {secret!r}", timeout=10)
    r = k.run("%%deepseek\nwhy is {tok} rejected?", timeout=20)
    assert r.status == "error" and r.error is not None
    assert "Not sent" in r.error.evalue and "--allow-secrets" in r.error.evalue
    assert secret not in r.error.evalue and secret not in "".join(r.error.traceback)
    assert srv.requests == []
    srv.enqueue(Script(text="because it expired", reasoning=""))
    r = k.run("%%deepseek --allow-secrets\nwhy is {tok} rejected?", timeout=20)
    assert r.status == "ok"
    assert len(srv.requests) == 1 and secret in srv.requests[0].body["messages"][-1]["content"]
