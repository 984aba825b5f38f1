#!/usr/bin/env python3
"""A model of draw_rows' algorithm (Sources/GPUModel/SamplingKernels.swift) in numpy, against the draw's exact
definition (Engine's ExactDraw): order-preserving keys, fixed-point weights (2^-40, rounded to nearest), radix
selection by 8-bit histograms walked from the top bin down, equal keys in id order, top-k by counts, top-p cut at
ceil(p * mass), the draw at floor(uniform * mass). It checks the algorithm, not the CUDA code (block scans, warp
aggregation, barriers), which only `swiftwise gpu-check` on a GPU does. Session 10: 0 of 1008 draws differ.
Usage: scripts/draw_rows_model.py (needs numpy)"""
import numpy as np, math
ONE = 1 << 40
def key(s):
    u = np.float32(s).view(np.uint32).astype(np.uint64)
    out = np.where(u & 0x80000000, (~u) & 0xffffffff, u | 0x80000000)
    out = np.where(np.isnan(s), 0, out)
    out = np.where(s == 0, 0x80000000, out)
    return out.astype(np.uint64)
def value(k):
    k = int(k)
    u = (k & 0x7fffffff) if (k & 0x80000000) else (~k & 0xffffffff)
    return np.array([u], dtype=np.uint32).view(np.float32)[0]
def device(row, invT, topK, topP, minP, u):
    V = len(row)
    s = (row.astype(np.float32) * np.float32(invT)).astype(np.float32)
    keys = key(s)
    top = int(keys.max())
    largest = value(top)
    if top == 0 or np.isinf(largest):
        return int(np.argmax(keys == top))
    vals = np.where(s == 0, np.float32(0), s)  # draw_value(draw_key(s)): -0 as +0
    w = np.exp((vals - np.float32(largest)).astype(np.float32)).astype(np.float32)
    W = np.rint(np.nan_to_num(w.astype(np.float64)) * ONE).astype(np.uint64)  # __float2ull_rn(w * 2^40)
    W[keys == 0] = 0
    ids = np.arange(V)
    kKey, kId = 0, V
    def weights(counts=False):
        if counts: return np.ones(V, dtype=np.uint64)
        ok = ~((keys < kKey) | ((keys == kKey) & (ids > kId)) | (keys == 0)) & (w >= np.float32(minP))
        return np.where(ok, W, 0).astype(np.uint64)
    def by_id(wt, pos, mask=None):
        wt = wt if mask is None else np.where(mask, wt, 0)
        c = np.cumsum(wt.astype(object))
        idx = next((i for i in range(V) if pos < c[i]), -1)
        before = int(c[idx] - wt[idx]) if idx >= 0 else 0
        return idx, before
    def by_rank(wt, pos):
        prefix, mask, above = 0, 0, 0
        for shift in (24, 16, 8, 0):
            m = ((keys & mask) == prefix) & (wt > 0)
            hist = [0] * 256
            for k, x in zip(keys[m], wt[m]): hist[(int(k) >> shift) & 255] += int(x)
            walked = above; found = -1
            for b in range(255, -1, -1):
                if pos < walked + hist[b]: found = b; break
                walked += hist[b]
            if found < 0: return -1, 0, 0
            prefix |= found << shift; mask |= 255 << shift; above = walked
        idx, before = by_id(wt, pos - above, keys == prefix)
        return idx, before + above, prefix
    truncated = False
    if 0 < topK < V:
        kth, _, kk = by_rank(weights(True), topK - 1)
        kKey, kId = kk, kth; truncated = True
    wt = weights()
    mass = int(sum(int(x) for x in wt))
    if topP < 1:
        need = math.ceil(float(np.float32(topP)) * mass)
        at = max(need, 1) - 1
        at = min(at, mass - 1)
        last, before, lk = by_rank(wt, at)
        mass = before + int(wt[last]); truncated = True
    U = int(np.float32(u) * 16777216) << 40
    pos = (mass * U) >> 64
    return by_rank(wt, pos)[0] if truncated else by_id(wt, pos)[0]
def exact(row, invT, topK, topP, minP, u):
    s = (row.astype(np.float32) * np.float32(invT)).astype(np.float32)
    fin = s[~np.isnan(s)]
    largest = fin.max() if len(fin) else np.nan
    if not np.isfinite(largest):
        return int(next(i for i in range(len(s)) if s[i] == largest or (np.isnan(largest) and np.isnan(s[i]))))
    w = np.where(np.isnan(s), 0, np.exp(s.astype(np.float64) - float(largest)))
    order = sorted(range(len(s)), key=lambda i: (1, 0, i) if np.isnan(s[i]) else (0, -float(s[i]), i))
    kept = order; tr = False
    if 0 < topK < len(s): kept = kept[:topK]; tr = True
    if minP > 0: kept = [i for i in kept if w[i] >= float(np.float32(minP))]
    if topP < 1:
        M = sum(w[i] for i in kept); c = 0; end = len(kept)
        for n, i in enumerate(kept):
            c += w[i]
            if c >= float(np.float32(topP)) * M: end = n + 1; break
        kept = kept[:end]; tr = True
    walk = kept if tr else sorted(kept)
    M = sum(w[i] for i in walk); t = float(np.float32(u)) * M; c = 0
    for i in walk:
        c += w[i]
        if t < c: return i
    return walk[-1]
rng = np.random.default_rng(1)
V = 3000
rows = [rng.normal(0, 3, V).astype(np.float32) for _ in range(3)]
r = rows[0].copy(); r[[3, 700, 1900]] = r.max(); rows.append(r)
r = rows[1].copy(); r[::97] = np.nan; r[5::89] = -np.inf; rows.append(r)
r = np.zeros(V, np.float32); r[::100] = 0.5; rows.append(r)
r = rows[2].copy(); r[500] = np.inf; rows.append(r)
settings = [(1,0,1,0),(0.7,0,1,0),(0.8,0,0.95,0),(1,50,1,0),(1.3,40,0.9,0.05),(1,0,1,0.1),(0.5,0,0.5,0),(1,1000,0.99,0),(1.2,0,0.9,0.02)]
us = [np.float32(int((k + 0.5) / 16 * 16777216) / 16777216) for k in range(16)]
diff = tot = 0
for ri, row in enumerate(rows):
    for (T, k, p, mp) in settings:
        invT = np.float32(1) if T == 1 else np.float32(1) / np.float32(T)
        for u in us:
            a, b = device(row, invT, k, p, mp, u), exact(row, invT, k, p, mp, u)
            tot += 1
            if a != b:
                diff += 1
                if diff < 10: print("diff", ri, (T, k, p, mp), u, a, b)
print(diff, "of", tot)
