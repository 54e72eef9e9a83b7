#!/usr/bin/python3
"""gen_nn_fixtures.py: PyTorch parity fixtures for the C training engine (src/nn).

Run with Debian's python3-torch:   /usr/bin/python3 scripts/gen_nn_fixtures.py
Writes into tests/nn/fixtures/:
  gpt2_tiny50k.safetensors   L=2 NH=2 C=64 V=50257 (GPT-2's vocabulary), B=2 T=16
  gpt2_odd.safetensors       L=3 NH=3 C=96 V=1000, B=3 T=37 (odd sizes, ignored targets)
  hf_tiny/                   an HF-layout model directory (model.safetensors with
                             "transformer." names, Conv1D [in,out] weights, attn.bias
                             buffers, a tied lm_head.weight; config.json)
  hf_tiny_bf16/              the same model stored in BF16
  hf_tiny_expected.safetensors  inputs and the logits of both directories

The weights are not stored for the parity fixtures (the 50257-row embedding alone
would be 13 MB): both sides generate them from fixture_fill(), a splitmix64 stream
that tests/nn/test_gpt2.c implements bit for bit. The reference runs in float64,
so the C side (fp32) is compared against the exact answer. Stored: inputs,
targets (-1 = ignored), per-token loss weights (0, 0.01, 1), logits (sampled
columns), the weighted-mean loss, every parameter gradient (wte on sampled rows),
and the parameters after 3 AdamW steps with global-norm clipping and weight decay
on the 2-D tensors (sampled elements), with the loss and gradient norm per step.
All fixtures together stay under 3 MB.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "nn", "fixtures")

# nn.h order, internal [out][in] layout; (name, shape fn, kind)
NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
MATRIX = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def shapes(L, C, V, maxT):
    return {"wte": (V, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C),
            "qkvw": (L, 3 * C, C), "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C),
            "ln2w": (L, C), "ln2b": (L, C), "fcw": (L, 4 * C, C), "fcb": (L, 4 * C),
            "fcprojw": (L, C, 4 * C), "fcprojb": (L, C), "lnfw": (C,), "lnfb": (C,)}


# (offset, scale) of the uniform values per tensor; the C test has the same table
FILL = {"wte": (0.0, 0.1), "wpe": (0.0, 0.05), "ln1w": (1.0, 0.1), "ln1b": (0.0, 0.05),
        "qkvw": (0.0, 0.08), "qkvb": (0.0, 0.02), "attprojw": (0.0, 0.08), "attprojb": (0.0, 0.02),
        "ln2w": (1.0, 0.1), "ln2b": (0.0, 0.05), "fcw": (0.0, 0.08), "fcb": (0.0, 0.02),
        "fcprojw": (0.0, 0.04), "fcprojb": (0.0, 0.02), "lnfw": (1.0, 0.1), "lnfb": (0.0, 0.05)}

M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def fixture_fill(seed, tensor_index, n, offset, scale):
    """value_i = offset + scale * (2u - 1), u = top 24 bits of
    splitmix64_mix(seed * 2^32 + tensor_index * 2^48 + (i + 1) * golden) / 2^24."""
    with np.errstate(over="ignore"):
        base = np.uint64((seed << 32) + (tensor_index << 48)) & M64
        z = base + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    return (offset + scale * (2.0 * u - 1.0)).astype(np.float32)


def make_params(L, C, V, maxT, seed):
    sh = shapes(L, C, V, maxT)
    P = {}
    for i, name in enumerate(NAMES):
        n = int(np.prod(sh[name]))
        off, sc = FILL[name]
        P[name] = fixture_fill(seed, i, n, off, sc).reshape(sh[name])
    return P


def gpt2_forward(P, idx, L, NH, C):
    """Reference GPT-2 (pre-LN, tanh GELU, tied head) on torch tensors P (internal layout)."""
    B, T = idx.shape
    hs = C // NH
    x = P["wte"][idx] + P["wpe"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), P["ln1w"][l], P["ln1b"][l], eps=1e-5)
        qkv = h @ P["qkvw"][l].T + P["qkvb"][l]
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ P["attprojw"][l].T + P["attprojb"][l]
        h = F.layer_norm(x, (C,), P["ln2w"][l], P["ln2b"][l], eps=1e-5)
        h = F.gelu(h @ P["fcw"][l].T + P["fcb"][l], approximate="tanh")
        x = x + h @ P["fcprojw"][l].T + P["fcprojb"][l]
    x = F.layer_norm(x, (C,), P["lnfw"], P["lnfb"], eps=1e-5)
    return x @ P["wte"].T


def weighted_loss(logits, targets, w):
    V = logits.shape[-1]
    valid = targets >= 0
    ce = F.cross_entropy(logits.reshape(-1, V), targets.clamp(min=0).reshape(-1), reduction="none")
    wv = torch.where(valid.reshape(-1), w.reshape(-1), torch.zeros_like(w.reshape(-1)))
    return (wv * ce).sum() / wv.sum()


def st_write(path, tensors):
    """Minimal safetensors writer: tensors is a list of (name, dtype, shape, bytes)."""
    header, blobs, off = {}, [], 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def arr(name, a):
    a = np.ascontiguousarray(a)
    dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32"}[a.dtype]
    return (name, dt, a.shape, a.tobytes())


def sample_idx(n, cap, rng):
    if n <= cap:
        return np.arange(n, dtype=np.int32)
    return np.sort(rng.choice(n, cap, replace=False)).astype(np.int32)


def parity_fixture(fname, L, NH, C, V, maxT, B, T, seed, ignore_some, logit_cols, grad_cap, after_cap, wte_rows):
    rng = np.random.default_rng(seed)
    P = make_params(L, C, V, maxT, seed)
    inputs = rng.integers(0, V, size=(B, T)).astype(np.int32)
    targets = rng.integers(0, V, size=(B, T)).astype(np.int32)
    if ignore_some:
        targets[rng.random((B, T)) < 0.1] = -1
    weights = rng.choice(np.array([0.0, 0.01, 1.0], dtype=np.float32), size=(B, T), p=[0.2, 0.3, 0.5])
    weights[0, -1] = 1.0  # never all zero
    # eps 1e-6, not 1e-8: the k-bias gradient is exactly zero in exact arithmetic (softmax
    # ignores a per-query constant), so fp32 leaves ~1e-9 noise there, which AdamW divides by
    # sqrt(v) + eps; with eps 1e-8 that noise becomes a ~lr-sized step and no fp32 engine could
    # meet 1e-5 against the float64 reference. 1e-6 keeps the comparison meaningful.
    adam = dict(lr=1e-3, b1=0.9, b2=0.95, eps=1e-6, wd=0.1, clip=1.0)

    Pt = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in P.items()}
    idx = torch.tensor(inputs, dtype=torch.long)
    tg = torch.tensor(targets, dtype=torch.long)
    w = torch.tensor(weights, dtype=torch.float64)

    logits = gpt2_forward(Pt, idx, L, NH, C)
    loss = weighted_loss(logits, tg, w)
    loss.backward()
    out = [arr("config", np.array([L, NH, C, V, maxT, B, T, seed], dtype=np.int32)),
           arr("inputs", inputs), arr("targets", targets), arr("weights", weights),
           arr("adam", np.array([adam[k] for k in ("lr", "b1", "b2", "eps", "wd", "clip")], dtype=np.float32)),
           arr("loss", np.array([loss.item()], dtype=np.float32))]
    cols = sample_idx(V, logit_cols, rng)
    out.append(arr("logit_cols", cols))
    out.append(arr("logits", logits.detach().numpy()[:, :, cols].astype(np.float32)))
    # argmax of the reference logits (C compares where the top-2 gap is clear)
    lg = logits.detach().numpy().reshape(B * T, V)
    out.append(arr("argmax", lg.argmax(axis=1).astype(np.int32)))
    top2 = np.sort(lg, axis=1)[:, -2:]
    out.append(arr("argmax_gap", (top2[:, 1] - top2[:, 0]).astype(np.float32)))
    for name in NAMES:
        g = Pt[name].grad.numpy().reshape(-1)
        if name == "wte":
            rows = np.unique(np.concatenate([inputs.reshape(-1), targets[targets >= 0].reshape(-1),
                                             rng.choice(V, wte_rows, replace=False)]))
            gi = (rows[:, None] * C + np.arange(C)[None, :]).reshape(-1).astype(np.int32)
        else:
            gi = sample_idx(g.size, grad_cap, rng)
        if gi.size < g.size:  # no index tensor = the whole tensor
            out.append(arr("grad_idx." + name, gi))
        out.append(arr("grad." + name, g[gi].astype(np.float32)))

    # 3 AdamW steps on the same batch, clipping the global norm
    decay = [Pt[n] for n in NAMES if n in MATRIX]
    nodecay = [Pt[n] for n in NAMES if n not in MATRIX]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": adam["wd"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=adam["lr"], betas=(adam["b1"], adam["b2"]), eps=adam["eps"])
    losses, norms = [], []
    for step in range(3):
        opt.zero_grad()
        l = weighted_loss(gpt2_forward(Pt, idx, L, NH, C), tg, w)
        l.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(Pt.values()), adam["clip"]).item())
        opt.step()
        losses.append(l.item())
    out.append(arr("step_losses", np.array(losses, dtype=np.float32)))
    out.append(arr("step_norms", np.array(norms, dtype=np.float32)))
    for name in NAMES:
        p = Pt[name].detach().numpy().reshape(-1)
        ai = sample_idx(p.size, after_cap, rng)
        if ai.size < p.size:
            out.append(arr("after_idx." + name, ai))
        out.append(arr("after." + name, p[ai].astype(np.float32)))
    st_write(os.path.join(OUT, fname), out)


def bf16_bytes(a):
    """Round-to-nearest-even fp32 -> bf16, as torch does."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes(), (u.astype(np.uint32) << 16).view(np.float32)


def hf_fixture():
    L, NH, C, V, maxT, B, T, seed = 2, 4, 32, 500, 16, 2, 11, 7
    P = make_params(L, C, V, maxT, seed)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, V, size=(B, T)).astype(np.int32)
    expected = [arr("inputs", inputs)]
    for dirname, bf16 in (("hf_tiny", False), ("hf_tiny_bf16", True)):
        d = os.path.join(OUT, dirname)
        os.makedirs(d, exist_ok=True)
        tensors, used = [], {}

        def put(name, a, dtype="F32"):
            a = np.ascontiguousarray(a, dtype=np.float32)
            if bf16 and dtype == "F32":
                data, back = bf16_bytes(a)
                tensors.append((name, "BF16", a.shape, data))
                return back.reshape(a.shape)
            tensors.append((name, "F32", a.shape, a.tobytes()))
            return a
        pre = "transformer."
        used["wte"] = put(pre + "wte.weight", P["wte"])
        used["wpe"] = put(pre + "wpe.weight", P["wpe"])
        for k in ("qkvw", "qkvb", "attprojw", "attprojb", "fcw", "fcb", "fcprojw", "fcprojb",
                  "ln1w", "ln1b", "ln2w", "ln2b"):
            used[k] = np.zeros_like(P[k])
        for l in range(L):
            h = "%sh.%d." % (pre, l)
            used["ln1w"][l] = put(h + "ln_1.weight", P["ln1w"][l])
            used["ln1b"][l] = put(h + "ln_1.bias", P["ln1b"][l])
            tensors.append((h + "attn.bias", "F32", (1, 1, maxT, maxT),
                            np.tril(np.ones((maxT, maxT), dtype=np.float32)).tobytes()))
            tensors.append((h + "attn.masked_bias", "F32", (), np.array(-1e4, dtype=np.float32).tobytes()))
            used["qkvw"][l] = put(h + "attn.c_attn.weight", P["qkvw"][l].T).T
            used["qkvb"][l] = put(h + "attn.c_attn.bias", P["qkvb"][l])
            used["attprojw"][l] = put(h + "attn.c_proj.weight", P["attprojw"][l].T).T
            used["attprojb"][l] = put(h + "attn.c_proj.bias", P["attprojb"][l])
            used["ln2w"][l] = put(h + "ln_2.weight", P["ln2w"][l])
            used["ln2b"][l] = put(h + "ln_2.bias", P["ln2b"][l])
            used["fcw"][l] = put(h + "mlp.c_fc.weight", P["fcw"][l].T).T
            used["fcb"][l] = put(h + "mlp.c_fc.bias", P["fcb"][l])
            used["fcprojw"][l] = put(h + "mlp.c_proj.weight", P["fcprojw"][l].T).T
            used["fcprojb"][l] = put(h + "mlp.c_proj.bias", P["fcprojb"][l])
        used["lnfw"] = put(pre + "ln_f.weight", P["lnfw"])
        used["lnfb"] = put(pre + "ln_f.bias", P["lnfb"])
        put("lm_head.weight", P["wte"])
        st_write(os.path.join(d, "model.safetensors"), tensors)
        cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
               "n_layer": L, "n_head": NH, "n_embd": C, "n_positions": maxT, "n_ctx": maxT,
               "vocab_size": V, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
               "torch_dtype": "bfloat16" if bf16 else "float32"}
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        Pt = {k: torch.tensor(v, dtype=torch.float64) for k, v in used.items()}
        logits = gpt2_forward(Pt, torch.tensor(inputs, dtype=torch.long), L, NH, C)
        expected.append(arr("logits_bf16" if bf16 else "logits", logits.numpy().astype(np.float32)))
    st_write(os.path.join(OUT, "hf_tiny_expected.safetensors"), expected)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    parity_fixture("gpt2_tiny50k.safetensors", L=2, NH=2, C=64, V=50257, maxT=24, B=2, T=16, seed=1,
                   ignore_some=False, logit_cols=256, grad_cap=1 << 30, after_cap=1024, wte_rows=64)
    parity_fixture("gpt2_odd.safetensors", L=3, NH=3, C=96, V=1000, maxT=40, B=3, T=37, seed=2,
                   ignore_some=True, logit_cols=128, grad_cap=1 << 30, after_cap=1024, wte_rows=100)
    hf_fixture()
    total = 0
    for root, _, files in os.walk(OUT):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print("fixtures written to %s (%.2f MB)" % (os.path.normpath(OUT), total / 1e6))
    if total > 3e6:
        sys.exit("fixtures exceed 3 MB")


if __name__ == "__main__":
    main()
