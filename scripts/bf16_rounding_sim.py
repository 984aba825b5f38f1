"""Where bf16 rounding puts the GPU path's logits error, simulated on the CPU with numpy: a random Llama-3.2-1B-shaped
model like scripts/gpu_reference.py's (same shapes and init scale, not the same weights), run in fp32, then with
chosen values rounded to bf16 (round to nearest even) as the GPU kernels round them. Prints each variant's
last-position relative error against fp32 (max |difference| / max |logit|, as `swiftwise gpu-check`). Session 6
used it to choose what to make more precise: GEMM inputs everywhere (split inputs) rather than one site.
Sites: qkv_in, o_in, gu_in, down_in, vocab_in (GEMM inputs), gu_out (the gate|up GEMM's output), kv (K and V as
the attention reads them), attn (Q, K, V and P in attention). Needs numpy and ~6 GB of memory; ~10 s a variant.
Usage: bf16_rounding_sim.py"""
import numpy as np

V, D, L, H, KVH, HD, F = 128256, 2048, 16, 32, 8, 64, 8192


def bf(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)


rng = np.random.default_rng(0)
def w(*s): return bf(rng.standard_normal(s, dtype=np.float32) * 0.02)
def n(d): return bf(1 + 0.2 * rng.standard_normal(d, dtype=np.float32))
E = w(V, D)
layers = [dict(an=n(D), fn=n(D), qkv=w(H*HD + 2*KVH*HD, D), o=w(D, H*HD), gu=w(2*F, D), down=w(D, F)) for _ in range(L)]
on = n(D)
T = 64
prompt = np.random.default_rng(1).integers(0, V, T)
# llama3 rope
inv = 1.0 / (500000.0 ** (np.arange(0, HD, 2) / HD))
factor, lf, hf, omax = 32.0, 1.0, 4.0, 8192
wl = 2 * np.pi / inv
lowwl, highwl = omax / lf, omax / hf
smooth = (omax / wl - lf) / (hf - lf)
inv2 = np.where(wl > lowwl, inv / factor, inv)
mid = (wl <= lowwl) & (wl >= highwl)
inv2 = np.where(mid, (1 - smooth) * inv / factor + smooth * inv, inv2)
pos = np.arange(T)[:, None] * inv2[None, :]
cos, sin = np.cos(pos).astype(np.float32), np.sin(pos).astype(np.float32)
def rope(x):  # x [T, heads, HD], rotate-half
    a, b = x[..., :HD//2], x[..., HD//2:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s], -1)
def rms(x, g): return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g
def fwd(sites):
    R = lambda name, a: bf(a) if name in sites else a
    x = E[prompt].astype(np.float32)
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)
    for l, Lw in enumerate(layers):
        xn = R('qkv_in', rms(x, Lw['an']))
        qkv = xn @ Lw['qkv'].T
        q = rope(qkv[:, :H*HD].reshape(T, H, HD)); k = rope(qkv[:, H*HD:H*HD+KVH*HD].reshape(T, KVH, HD)); v = qkv[:, H*HD+KVH*HD:].reshape(T, KVH, HD)
        q, k, v = R('attn', q), R('kv', R('attn', k)), R('kv', R('attn', v))
        out = np.empty((T, H, HD), np.float32)
        for h in range(H):
            s = q[:, h] @ k[:, h // 4].T / 8.0 + mask
            p = np.exp(s - s.max(-1, keepdims=True)); den = p.sum(-1, keepdims=True)
            out[:, h] = (R('attn', p) @ v[:, h // 4]) / den
        x = x + R('o_in', out.reshape(T, -1)) @ Lw['o'].T
        xn = R('gu_in', rms(x, Lw['fn']))
        gu = xn @ Lw['gu'].T
        gu = R('gu_out', gu); g, u = gu[:, :F], gu[:, F:]
        act = R('down_in', g / (1 + np.exp(-g)) * u)
        x = x + act @ Lw['down'].T
    h = R('vocab_in', rms(x[-1:], on))
    return (h @ E.T)[0]

GEMMS = {"qkv_in", "o_in", "gu_in", "down_in", "vocab_in"}
VARIANTS = [("every GEMM input and attention (transformers-style bf16 activations)", GEMMS | {"attn"}),
            ("every GEMM input (fp32 attention: steps of up to 64 rows)", GEMMS),
            ("the same and the gate|up output (steps of more than 64 rows)", GEMMS | {"gu_out", "attn"}),
            ("K and V only (a bf16 KV cache under otherwise exact math)", {"kv"}),
            ("the vocabulary projection's input only", {"vocab_in"})]

if __name__ == "__main__":
    ref = fwd(set())
    for name, sites in VARIANTS:
        z = fwd(sites)
        print(f"{np.abs(z - ref).max() / np.abs(ref).max():.2e}  {name}", flush=True)
