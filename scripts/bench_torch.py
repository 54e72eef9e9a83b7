#!/usr/bin/python3
"""bench_torch.py: the PyTorch reference for `tunery bench`.

Why: tunery's engine claims to be faster than PyTorch on the same CPU, so the
reference must be PyTorch at its honest best on this machine, measured in the
same run: the same GPT-2 124M training step (forward, backward, AdamW) at
B=4,T=64 and B=8,T=128, and eager generation with a KV cache (prefill of 128
tokens, decode at batch 1 and 8). The model is written here in plain torch
(~60 lines, no transformers), with the padded vocabulary 50304 as in nanoGPT
and llm.c.

The parent process re-executes itself once per configuration (threads 1 vs 2,
OMP_WAIT_POLICY=PASSIVE, glibc malloc tunables that stop the allocator from
returning memory to the kernel and page-faulting it back every step, oneDNN on
or off, bf16 autocast as a separate line), collects one JSON line per child,
and prints every line plus the best fp32 configuration per shape, in the same
format as `tunery bench` (one JSON object per line). Each training line also
carries cpu_ms_per_step_median (CPU time of all threads per step): on a busy
shared machine wall time measures the neighbours, CPU time mostly the work.

Run with Debian's torch:  /usr/bin/python3 scripts/bench_torch.py [--quick]
OPENBLAS_CORETYPE is removed for the reference children only (the Haswell
setting halves OpenBLAS, which torch uses for fp32 Linear layers here).
"""
import json
import math
import os
import subprocess
import sys
import time

MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TOP_PAD_": str(1 << 30),
              "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def child(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args["threads"])
    torch.backends.mkldnn.enabled = bool(args["mkldnn"])
    torch.manual_seed(0)

    L, NH, C, V, MAXT = 12, 12, 768, 50304, 1024

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x, cache=None):
            B, T, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, NH, C // NH).transpose(1, 2) for t in (q, k, v))
            if cache is not None:          # KV cache: (k, v) of earlier positions
                if cache[0] is not None:
                    k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
                cache[0], cache[1] = k, v
            causal = T > 1
            if cache is not None and k.shape[2] != T and T > 1:
                raise ValueError("prefill must start from an empty cache")
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal) if hasattr(F, "scaled_dot_product_attention") \
                else manual_attention(q, k, v, causal)
            x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    def manual_attention(q, k, v, causal):
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if causal:
            T, S = q.shape[2], k.shape[2]
            mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)
            att = att.masked_fill(~mask, float("-inf"))
        return F.softmax(att, dim=-1) @ v

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(MAXT, C)
            self.h = nn.ModuleList(Block() for _ in range(L))
            self.lnf = nn.LayerNorm(C)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)

        def forward(self, idx, caches=None, pos0=0, last_only=False):
            B, T = idx.shape
            x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + T))
            for i, blk in enumerate(self.h):
                x = blk(x, None if caches is None else caches[i])
            if last_only:                   # generation needs the last position's logits only
                x = x[:, -1:]
            return self.lnf(x) @ self.wte.weight.t()   # tied LM head

    model = GPT()
    out = {"bench": "torch", "threads": args["threads"], "mkldnn": args["mkldnn"],
           "env": args["env"], "torch": torch.__version__}
    if args["kind"] == "train":
        B, T, steps, warm = args["B"], args["T"], args["steps"], 2
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
        g = torch.Generator().manual_seed(1)
        x = torch.randint(0, 50257, (B, T), generator=g)
        y = torch.randint(0, 50257, (B, T), generator=g)
        times, cpu = [], []
        for s in range(warm + steps):
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(args["bf16"])):
                logits = model(x)
            loss = F.cross_entropy(logits.float().view(-1, V), y.view(-1))
            opt.zero_grad(set_to_none=False)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if s >= warm:
                times.append(dt * 1e3)
                cpu.append(dc * 1e3)
        times.sort()
        cpu.sort()
        med = times[len(times) // 2] if len(times) % 2 else 0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
        # the same count as the engine's gpt2_step_flops (gpt2.c), real vocabulary 50257
        BT = B * T
        flops = 6.0 * BT * 12 * C * C * L + 6.0 * BT * C * 50257 + 7.0 * B * T * (T + 1) * C * L
        out.update({"kind": "train", "B": B, "T": T, "precision": "bf16-autocast" if args["bf16"] else "fp32",
                    "steps": steps, "ms_per_step_median": round(med, 1), "ms_per_step_min": round(times[0], 1),
                    "cpu_ms_per_step_median": round(cpu[len(cpu) // 2], 1),
                    "tokens_per_s": round(B * T / (med * 1e-3)), "gflops_per_s": round(flops / (med * 1e-3) / 1e9, 1),
                    "loss_last": round(float(loss), 4)})
    else:
        model.eval()
        res = {}
        with torch.no_grad():
            # prefill of 128 tokens from an empty cache: one warm-up, then the
            # median of `reps`, both with the full logits (the model's forward
            # pass) and with the last position's only (what generation needs,
            # and what tunery's prefill computes)
            prompt = torch.randint(0, 50257, (1, 128), generator=torch.Generator().manual_seed(2))
            pre, pre_cpu = {}, {}
            for last in (False, True):
                ts, cs = [], []
                for r in range(1 + args.get("reps", 5)):
                    caches = [[None, None] for _ in range(L)]
                    t0, c0 = time.perf_counter(), time.process_time()
                    model(prompt, caches, 0, last_only=last)
                    if r:
                        ts.append(time.perf_counter() - t0)
                        cs.append(time.process_time() - c0)
                ts.sort()
                cs.sort()
                pre[last], pre_cpu[last] = ts[len(ts) // 2], cs[len(cs) // 2]
            for batch in (1, 8):
                prompt = torch.randint(0, 50257, (batch, 128), generator=torch.Generator().manual_seed(2))
                caches = [[None, None] for _ in range(L)]
                logits = model(prompt, caches, 0, last_only=True)
                tok = logits[:, -1].argmax(-1, keepdim=True)
                n_dec = args["decode"]
                ts = []
                for i in range(n_dec):
                    t0 = time.perf_counter()
                    logits = model(tok, caches, 128 + i)
                    tok = logits[:, -1].argmax(-1, keepdim=True)
                    ts.append(time.perf_counter() - t0)
                ts = sorted(ts[2:])
                med = ts[len(ts) // 2]
                res[batch] = med
        out.update({"kind": "generate", "prefill_T128_ms": round(pre[False] * 1e3, 1),
                    "prefill_T128_tokens_per_s": round(128 / pre[False]),
                    "prefill_T128_last_logits_ms": round(pre[True] * 1e3, 1),
                    "prefill_T128_cpu_ms": round(pre_cpu[False] * 1e3, 1),
                    "prefill_T128_last_logits_cpu_ms": round(pre_cpu[True] * 1e3, 1),
                    "decode_b1_ms_per_token": round(res[1] * 1e3, 2),
                    "decode_b1_tokens_per_s": round(1 / res[1], 1),
                    "decode_b8_ms_per_step": round(res[8] * 1e3, 2),
                    "decode_b8_tokens_per_s": round(8 / res[8], 1)})
    print(json.dumps(out), flush=True)


def run_child(kind, threads, mkldnn, env_name, bf16=0, B=4, T=64, steps=5, decode=24):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)     # the reference only: see the module docstring
    env["OMP_NUM_THREADS"] = str(threads)
    if "passive" in env_name:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if "malloc" in env_name:
        env.update(MALLOC_ENV)
    spec = {"kind": kind, "threads": threads, "mkldnn": mkldnn, "env": env_name, "bf16": bf16,
            "B": B, "T": T, "steps": steps, "decode": decode}
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       env=env, capture_output=True, text=True, timeout=1800)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    return {"bench": "torch", "kind": kind, "error": (r.stderr.strip().splitlines() or ["no output"])[-1],
            "threads": threads, "mkldnn": mkldnn, "env": env_name}


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
        return
    quick = "--quick" in sys.argv
    steps = 3 if quick else 5
    results = []

    def emit(r):
        results.append(r)
        print(json.dumps(r), flush=True)

    # 1. search the configuration at B4T64: out of the box, then each knob
    envs = ["default", "passive", "malloc", "passive+malloc"]
    grid = [(2, 1, "default")] if quick else \
        [(t, m, e) for t in (1, 2) for e in envs for m in (1, 0) if not (m == 0 and e != "passive+malloc")]
    for t, m, e in grid:
        emit(run_child("train", t, m, e, B=4, T=64, steps=steps))
    ok = [r for r in results if "ms_per_step_median" in r]
    if not ok:
        sys.exit("bench_torch: every configuration failed; see the error fields above")
    best = min(ok, key=lambda r: r["ms_per_step_median"])
    bt, bm, be = best["threads"], best["mkldnn"], best["env"]
    print(json.dumps({"bench": "torch_best", "B": 4, "T": 64, "precision": "fp32",
                      "ms_per_step_median": best["ms_per_step_median"], "threads": bt, "mkldnn": bm, "env": be}),
          flush=True)

    # 2. B8T128 with the best configuration and out of the box
    r8 = [run_child("train", bt, bm, be, B=8, T=128, steps=steps)]
    if not quick and (bt, bm, be) != (2, 1, "default"):
        r8.append(run_child("train", 2, 1, "default", B=8, T=128, steps=steps))
    for r in r8:
        emit(r)
    ok8 = [r for r in r8 if "ms_per_step_median" in r]
    if ok8:
        b8 = min(ok8, key=lambda r: r["ms_per_step_median"])
        print(json.dumps({"bench": "torch_best", "B": 8, "T": 128, "precision": "fp32",
                          "ms_per_step_median": b8["ms_per_step_median"], "threads": b8["threads"],
                          "mkldnn": b8["mkldnn"], "env": b8["env"]}), flush=True)

    # 3. bf16 autocast, a separate line (not the fp32 reference)
    emit(run_child("train", bt, 1, be, bf16=1, B=4, T=64, steps=steps))

    # 4. generation with a KV cache, best training configuration
    emit(run_child("generate", bt, bm, be, decode=12 if quick else 24))


if __name__ == "__main__":
    main()
