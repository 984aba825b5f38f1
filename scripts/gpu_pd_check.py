"""PD on the GPU, run on a CUDA machine after scripts/gpu_reference.py wrote CKPT: a KV store, a prefill node and a
decode node (`serve --device cuda`, separate processes) and a colocated GPU node; greedy completions through
prefill -> store -> decode compared token id by token id with the colocated node, and the decode node's computed
prompt tokens. Usage: gpu_pd_check.py SWIFTWISE CKPT OUT_JSON"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=300))


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait(port, proc, log):
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"exited: {open(log).read()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("not ready")


def main():
    binary, ckpt, out = sys.argv[1:4]
    work = tempfile.mkdtemp()
    store = free_port()
    with open(f"{work}/lmcache.yaml", "w") as f:
        f.write(f'chunk_size: 16\nremote_url: "lm://127.0.0.1:{store}"\nremote_serde: "naive"\n')
    env = dict(os.environ, LMCACHE_CONFIG_FILE=f"{work}/lmcache.yaml")
    procs = [subprocess.Popen([binary, "kvstore", "127.0.0.1", str(store), "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    ports = {}
    for role, kv in (("prefill", "kv_producer"), ("decode", "kv_consumer"), ("colocated", None)):
        ports[role] = free_port()
        args = [binary, "serve", ckpt, "--device", "cuda", "--host", "127.0.0.1", "--port", str(ports[role]), "--served-model-name", "m",
                "--max-model-len", "1024", "--kv-cache-memory", "2GiB", "--log-level", "warning"]
        if kv:
            args += ["--kv-transfer-config", json.dumps({"kv_connector": "LMCacheConnector", "kv_role": kv})]
        log = f"{work}/{role}.log"
        procs.append(subprocess.Popen(args, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT))
        wait(ports[role], procs[-1], log)
    results = []
    try:
        for length in (10, 16, 48, 77):
            prompt = [(i * 7919 + length * 104729) % 128000 for i in range(length)]
            body = {"model": "m", "prompt": prompt, "max_tokens": 32, "temperature": 0, "ignore_eos": True, "logprobs": 0,
                    "return_tokens_as_token_ids": True}
            colocated = post(ports["colocated"], body)["choices"][0]["logprobs"]["tokens"]
            post(ports["prefill"], dict(body, max_tokens=1))
            before = metric(ports["decode"], "swiftwise:prompt_tokens_computed_total")
            decoded = post(ports["decode"], body)["choices"][0]["logprobs"]["tokens"]
            computed = metric(ports["decode"], "swiftwise:prompt_tokens_computed_total") - before
            same = sum(1 for _ in __import__("itertools").takewhile(lambda p: p[0] == p[1], zip(decoded, colocated)))
            results.append({"prompt_tokens": length, "decode_computed": computed, "identical_prefix": same, "tokens": len(colocated)})
            print(f"prompt {length}: decode computed {computed:.0f} prompt tokens; PD output identical for {same}/{len(colocated)} tokens", flush=True)
        # Part of the prompt from the store and the rest (more than 64 rows: prefill attention, which reads imported
        # blocks through the cache's bf16 shadow in the default mode) computed on the decode node; and the colocated
        # node asked twice (the second time from its own prefix cache). The default mode is not batch invariant.
        for length, stored in ((356, 256), (300, 160), (420, 400), (200, 64)):
            prompt = [(i * 7919 + length * 104729 + stored) % 128000 for i in range(length)]
            body = {"model": "m", "prompt": prompt, "max_tokens": 32, "temperature": 0, "ignore_eos": True, "logprobs": 0,
                    "return_tokens_as_token_ids": True}
            colocated = post(ports["colocated"], body)["choices"][0]["logprobs"]["tokens"]
            again = post(ports["colocated"], body)["choices"][0]["logprobs"]["tokens"]
            post(ports["prefill"], dict(body, prompt=prompt[:stored], max_tokens=1))
            before = metric(ports["decode"], "swiftwise:prompt_tokens_computed_total")
            decoded = post(ports["decode"], body)["choices"][0]["logprobs"]["tokens"]
            computed = metric(ports["decode"], "swiftwise:prompt_tokens_computed_total") - before
            same = sum(1 for _ in __import__("itertools").takewhile(lambda p: p[0] == p[1], zip(decoded, colocated)))
            repeat = sum(1 for _ in __import__("itertools").takewhile(lambda p: p[0] == p[1], zip(again, colocated)))
            results.append({"prompt_tokens": length, "stored_prefix": stored, "decode_computed": computed, "identical_prefix": same,
                            "colocated_repeat_identical_prefix": repeat, "tokens": len(colocated)})
            print(f"prompt {length}, {stored} of them prefilled: decode computed {computed:.0f} prompt tokens; PD output identical for "
                  f"{same}/{len(colocated)} tokens; the colocated node asked again: {repeat}/{len(colocated)}", flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    json.dump(results, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
