#!/usr/bin/python3
"""Reference fixtures for nn/ inference (tests/nn/test_infer.c).

Writes tests/nn/fixtures_infer/:
  model.safetensors + config.json   a tiny random GPT-2 (V=512, C=64, L=2,
                                    NH=4, T=128) in Hugging Face layout
                                    (Conv1D weights stored [in][out])
  expected.json                     a prompt; the greedy continuation for 64
                                    steps; for every prompt and generated
                                    position the logprob of the actual next
                                    token and the top-5 (ids, logprobs)

The model is a plain PyTorch re-statement of GPT-2 (tanh GELU, pre-LN, tied
LM head), computed in float64 so the fixture is the exact answer and the C
side's fp32 error is what the tests measure. Weights are drawn with a larger
std than GPT-2's 0.02 (large residual projections) so greedy decoding has a
clear winner at every step and does not fall into repeating one token (the
script asserts both).

Run: /usr/bin/python3 scripts/gen_infer_fixtures.py   (needs torch; no network)
"""
import json
import math
import os
import struct

import torch

V, C, L, NH, T = 512, 64, 2, 4, 128
PROMPT_LEN, STEPS, TOPK = 8, 64, 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "nn", "fixtures_infer")


def make_weights(seed):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    w = {"wte.weight": rnd(V, C, std=0.2), "wpe.weight": rnd(T, C, std=0.2)}
    for i in range(L):
        p = f"h.{i}."
        w[p + "ln_1.weight"] = 1.0 + rnd(C, std=0.1)
        w[p + "ln_1.bias"] = rnd(C, std=0.1)
        w[p + "attn.c_attn.weight"] = rnd(C, 3 * C, std=0.15)   # Conv1D: [in][out]
        w[p + "attn.c_attn.bias"] = rnd(3 * C, std=0.05)
        w[p + "attn.c_proj.weight"] = rnd(C, C, std=0.6)
        w[p + "attn.c_proj.bias"] = rnd(C, std=0.05)
        w[p + "ln_2.weight"] = 1.0 + rnd(C, std=0.1)
        w[p + "ln_2.bias"] = rnd(C, std=0.1)
        w[p + "mlp.c_fc.weight"] = rnd(C, 4 * C, std=0.1)
        w[p + "mlp.c_fc.bias"] = rnd(4 * C, std=0.05)
        w[p + "mlp.c_proj.weight"] = rnd(4 * C, C, std=0.6)
        w[p + "mlp.c_proj.bias"] = rnd(C, std=0.05)
    w["ln_f.weight"] = 1.0 + rnd(C, std=0.1)
    w["ln_f.bias"] = rnd(C, std=0.1)
    # round to fp32 first: the file is fp32 and the reference must use exactly those values
    return {k: v.float().double() for k, v in w.items()}


def gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(w, ids):
    """Logits (len(ids), V) of a full recomputation, causal attention."""
    n = len(ids)
    x = w["wte.weight"][ids] + w["wpe.weight"][:n]
    hs = C // NH
    mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], 1e-5)
    for i in range(L):
        p = f"h.{i}."
        qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=1)
        q = q.view(n, NH, hs).transpose(0, 1)
        k = k.view(n, NH, hs).transpose(0, 1)
        v = v.view(n, NH, hs).transpose(0, 1)
        att = (q @ k.transpose(1, 2)) / math.sqrt(hs)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(n, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = gelu(ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ w["wte.weight"].T


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.float().contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    os.makedirs(OUT, exist_ok=True)
    w = make_weights(4)
    g = torch.Generator().manual_seed(99)
    prompt = torch.randint(0, V, (PROMPT_LEN,), generator=g).tolist()
    ids = list(prompt)
    for _ in range(STEPS):
        logits = forward(w, ids)[-1]
        ids.append(int(logits.argmax()))
    logp = forward(w, ids).log_softmax(-1)  # one full recomputation scores every position
    margins, positions = [], []
    for t in range(len(ids) - 1):
        top = logp[t].topk(TOPK)
        margins.append(float(top.values[0] - top.values[1]))
        positions.append({
            "next": ids[t + 1],
            "logprob": float(logp[t, ids[t + 1]]),
            "top_ids": top.indices.tolist(),
            "top_logprobs": top.values.tolist(),
        })
    gen_margin = min(margins[PROMPT_LEN - 1:])
    assert gen_margin > 1e-2 and len(set(ids[PROMPT_LEN:])) > 16, f"greedy margin {gen_margin} too small for a stable fixture; change the seed"
    write_safetensors(os.path.join(OUT, "model.safetensors"), w)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": V, "n_positions": T,
           "n_ctx": T, "n_embd": C, "n_layer": L, "n_head": NH, "layer_norm_epsilon": 1e-5,
           "activation_function": "gelu_new"}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    exp = {"prompt": prompt, "greedy": ids[PROMPT_LEN:], "positions": positions,
           "min_greedy_margin": gen_margin}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(f"wrote {OUT}: prompt {len(prompt)} tokens, {STEPS} greedy steps, min top1-top2 margin {gen_margin:.4f}")


if __name__ == "__main__":
    main()
