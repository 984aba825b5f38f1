"""Drives an OpenAI-compatible endpoint with the official `openai` client: chat and completions, streamed and not.
Usage: openai_client_check.py BASE_URL API_KEY EXPECTED_TEXT STREAM_TEXT. Exits non-zero on any mismatch."""
import sys

import openai


def main():
    base_url, api_key, expected, streamed_expected = sys.argv[1:5]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)

    chat = client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "San Francisco"}],
                                          max_tokens=20, temperature=0.75)
    assert chat.choices[0].message.content == expected, chat
    assert chat.choices[0].finish_reason == "stop", chat

    pieces = []
    finish = None
    for chunk in client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=20, stream=True, stream_options={"include_usage": True}):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == streamed_expected, pieces
    assert finish == "stop", finish

    completion = client.completions.create(model="fake-model", prompt="The capital of France is", max_tokens=5)
    assert completion.choices[0].text == expected, completion

    text = "".join(c.choices[0].text for c in client.completions.create(model="fake-model", prompt="x", max_tokens=5,
                                                                        stream=True) if c.choices)
    assert text == streamed_expected, text

    models = client.models.list()
    assert any(m.id == "fake-model" for m in models.data), models

    try:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0, timeout=30).chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "x"}])
        raise SystemExit("a wrong API key was accepted")
    except openai.AuthenticationError:
        pass
    print("openai_client_check: ok")


if __name__ == "__main__":
    main()
