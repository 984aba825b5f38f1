"""GPU check fixtures, run on the CUDA machine: a random Llama-3.2-1B-shaped bf16 checkpoint (vocab 128256, hidden
2048, 16 layers, 32 heads, 8 KV heads, FFN 8192, tied embeddings, llama3 RoPE scaling) saved as a Hugging Face folder,
transformers' reference outputs for `swiftwise gpu-check`, and transformers' own speed (eager generate and a
torch.compile'd static-cache decode loop) for the same-run comparison.
With --checkpoint-only it writes only a checkpoint of that shape, initialized on the GPU (seconds instead of a minute;
other random values than the CPU-initialized one), for timing runs.
Usage: gpu_reference.py OUT_DIR [--bench | --checkpoint-only]"""
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    out = sys.argv[1]
    # An exact fp32 reference: no TF32 in matmuls, eager attention.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    bench = "--bench" in sys.argv
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                         num_attention_heads=32, num_key_value_heads=8, head_dim=64, tie_word_embeddings=True,
                         rms_norm_eps=1e-5, max_position_embeddings=131072, initializer_range=0.02,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192}, rope_theta=500000.0,
                         bos_token_id=128000, eos_token_id=128001)
    config._attn_implementation = "eager"
    if "--checkpoint-only" in sys.argv:
        with torch.device("cuda"):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(out + "/ckpt", safe_serialization=True)
        return
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random norms, so a norm bug shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    model.save_pretrained(out + "/ckpt", safe_serialization=True)
    if bench:
        return run_bench(out, config)

    # Reference in fp32 from the saved bf16 weights (the most precise answer the checkpoint has), on the CPU so no
    # reduced-precision GPU math can enter it. Reloaded from disk: `model.to(bfloat16)` also rounded the RoPE
    # inv_freq buffer, and casting back would keep that rounding (a 2e-3 logits error on its own).
    model = LlamaForCausalLM.from_pretrained(out + "/ckpt", dtype=torch.float32, attn_implementation="eager").eval()
    torch.set_num_threads(os.cpu_count() or 1)
    prompt = torch.randint(0, config.vocab_size, (1, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(prompt).logits[0]
        greedy = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=128,
                                min_new_tokens=128, eos_token_id=None, pad_token_id=0)[0, 64:]
    prompt = prompt.cuda()
    logits, greedy = logits.cuda(), greedy.cuda()
    # transformers' own bf16 run, for comparison at the same precision.
    model16 = LlamaForCausalLM.from_pretrained(out + "/ckpt", dtype=torch.bfloat16).cuda().eval()
    with torch.no_grad():
        logits16 = model16(prompt).logits[0].float()
        greedy16 = model16.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=128,
                                    min_new_tokens=128, eos_token_id=None, pad_token_id=0)[0, 64:]
    rel = ((logits16[-1] - logits[-1]).abs().max() / logits[-1].abs().max()).item()
    same = int((greedy16 == greedy).cumprod(0).sum().item())
    print(f"transformers bf16 vs fp32: last-position relative error {rel:.2e}, greedy identical prefix {same}/128", flush=True)
    json.dump({"prompt_ids": prompt[0].tolist(), "last_logits": logits[-1].tolist(), "argmax": logits.argmax(-1).tolist(),
               "greedy_ids": greedy.tolist(), "last_logits_bf16": logits16[-1].tolist(), "greedy_ids_bf16": greedy16.tolist(),
               "transformers_bf16_relative_error": rel, "transformers_bf16_greedy_prefix": same}, open(out + "/reference.json", "w"))
    print("reference written", flush=True)


def run_bench(out, config):
    results = {}
    model = LlamaForCausalLM.from_pretrained(out + "/ckpt", dtype=torch.bfloat16).cuda().eval()

    def timed(fn):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t

    with torch.no_grad():
        for batch in (1, 32):
            ids = torch.randint(0, 30000, (batch, 512)).cuda()
            run = lambda: model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=256,
                                         min_new_tokens=256, eos_token_id=None, pad_token_id=0)
            run()
            t_prefill = timed(lambda: model(ids))
            t = timed(run)
            results[f"eager_decode_batch{batch}_tok_s"] = batch * 256 / max(t - t_prefill, 1e-9)
        ids = torch.randint(0, 30000, (1, 2048)).cuda()
        model(ids)
        results["eager_prefill_2048_ms"] = 1000 * timed(lambda: model(ids))
        print(json.dumps(results), flush=True)
        # gpt-fast style: static KV cache, the one-token step compiled (reduce-overhead → CUDA graphs).
        try:
            from transformers import StaticCache
            batch = 1
            cache = StaticCache(config=model.config, max_batch_size=batch, max_cache_len=512 + 256 + 8, device="cuda", dtype=torch.bfloat16)
            ids = torch.randint(0, 30000, (batch, 512)).cuda()
            pos = torch.arange(512, device="cuda")
            logits = model(ids, past_key_values=cache, cache_position=pos, use_cache=True).logits
            token = logits[:, -1:].argmax(-1)

            def step(token, position):
                return model(token, past_key_values=cache, cache_position=position, use_cache=True).logits[:, -1:].argmax(-1)

            compiled = torch.compile(step, mode="reduce-overhead", fullgraph=True)
            for i in range(3):  # compile + warm up
                token = compiled(token, torch.tensor([512 + i], device="cuda")).clone()
            steps = 200
            def loop():
                nonlocal token
                for i in range(steps):
                    token = compiled(token, torch.tensor([515 + i], device="cuda")).clone()
            results["compiled_decode_batch1_tok_s"] = steps / timed(loop)
        except Exception as e:  # report, do not fail the check
            results["compiled_error"] = repr(e)[:300]
    json.dump(results, open(out + "/torch-bench.json", "w"))
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
