"""Drives `swiftwise serve` with the official `openai` client: chat and completions, streamed and not, usage and
logprobs, error classes. Usage: serve_client_check.py BASE_URL MODEL. Exits non-zero on any mismatch."""
import json
import sys
import urllib.request

import openai


def tokenize(base_url, body):
    request = urllib.request.Request(base_url.removesuffix("/v1") + "/tokenize", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))["count"]


def main():
    base_url, model = sys.argv[1:3]
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=60)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."}]
    prompt_tokens = tokenize(base_url, {"model": model, "messages": messages})

    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0)
    text = chat.choices[0].message.content
    assert chat.choices[0].message.role == "assistant", chat
    assert chat.usage.prompt_tokens == prompt_tokens, (chat.usage, prompt_tokens)
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, chat.usage
    if chat.choices[0].finish_reason == "length":
        assert chat.usage.completion_tokens == 12, chat.usage

    pieces, finish, usage, roles = [], None, None, []
    for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=12, temperature=0,
                                                stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == text, (pieces, text)
    assert roles == ["assistant"], roles
    assert finish == chat.choices[0].finish_reason, finish
    assert usage is not None and usage.completion_tokens == chat.usage.completion_tokens, usage
    assert usage.prompt_tokens == prompt_tokens, usage

    completion = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0)
    assert completion.choices[0].text.startswith(" Paris"), completion
    assert completion.usage.prompt_tokens == tokenize(base_url, {"model": model, "prompt": "The capital of France is"})
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model, prompt="The capital of France is", max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == completion.choices[0].text, (streamed, completion)

    with_logprobs = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0,
                                                   logprobs=True, top_logprobs=3)
    entries = with_logprobs.choices[0].logprobs.content
    assert len(entries) == with_logprobs.usage.completion_tokens, entries
    assert all(len(e.top_logprobs) == 3 and e.logprob <= 0 for e in entries), entries
    assert entries[0].token == entries[0].top_logprobs[0].token, entries[0]  # greedy picks the most likely

    seeded = [client.completions.create(model=model, prompt="Once upon a time", max_tokens=10, temperature=1.0,
                                        seed=1234).choices[0].text for _ in range(2)]
    assert seeded[0] == seeded[1], seeded

    stopped = client.completions.create(model=model, prompt="The capital of France is", max_tokens=6, temperature=0,
                                        stop=["aris"])
    assert stopped.choices[0].text == " P" and stopped.choices[0].finish_reason == "stop", stopped

    for bad, kind in [(dict(max_tokens=-1), openai.BadRequestError), (dict(model="nope"), openai.NotFoundError),
                      (dict(messages=[]), openai.BadRequestError), (dict(temperature="hot"), openai.BadRequestError)]:
        args = dict(model=model, messages=messages, max_tokens=4)
        args.update(bad)
        try:
            client.chat.completions.create(**args)
            raise AssertionError(f"{bad} was accepted")
        except kind:
            pass
    models = client.models.list()
    assert [m.id for m in models.data] == [model], models
    print("serve_client_check: ok")


if __name__ == "__main__":
    main()
