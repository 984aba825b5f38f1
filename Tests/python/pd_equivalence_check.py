"""The same greedy requests, with the official `openai` client, through a PD endpoint (the proxy of `swiftwise demo`)
and a colocated `swiftwise serve`: answers must be identical. Usage: pd_equivalence_check.py PD_URL COLOCATED_URL
PD_MODEL COLOCATED_MODEL. Exits non-zero on any difference."""
import sys

import openai


def main():
    pd_url, colocated_url, pd_model, colocated_model = sys.argv[1:5]
    pd = openai.OpenAI(base_url=pd_url, api_key="unused", max_retries=0, timeout=120)
    colocated = openai.OpenAI(base_url=colocated_url, api_key="unused", max_retries=0, timeout=120)
    questions = ["San Francisco", "Explain in two sentences why the sky is blue, then name three colours of a sunset."]
    for question in questions:
        messages = [{"role": "user", "content": question}]
        a = pd.chat.completions.create(model=pd_model, messages=messages, max_tokens=24, temperature=0)
        b = colocated.chat.completions.create(model=colocated_model, messages=messages, max_tokens=24, temperature=0)
        assert a.choices[0].message.content == b.choices[0].message.content, (a, b)
        assert a.usage.prompt_tokens == b.usage.prompt_tokens and a.usage.completion_tokens == b.usage.completion_tokens
        streamed = "".join(c.choices[0].delta.content or "" for c in pd.chat.completions.create(
            model=pd_model, messages=messages, max_tokens=24, temperature=0, stream=True) if c.choices)
        assert streamed == b.choices[0].message.content, (streamed, b)
    prompt = "The history of the printing press begins in the fifteenth century, when"
    a = pd.completions.create(model=pd_model, prompt=prompt, max_tokens=16, temperature=0)
    b = colocated.completions.create(model=colocated_model, prompt=prompt, max_tokens=16, temperature=0)
    assert a.choices[0].text == b.choices[0].text, (a, b)
    print("pd_equivalence_check: ok")


if __name__ == "__main__":
    main()
