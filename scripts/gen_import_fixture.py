#!/usr/bin/python3
"""gen_import_fixture.py: the fixtures of `tunery models import` (tests/models).

Run with Debian's python3-torch (no transformers, no safetensors package):
    /usr/bin/python3 scripts/gen_import_fixture.py
Writes into tests/models/fixtures/:
  hf_gpt2/        a random-weight GPT-2 directory exactly as Hugging Face lays
                  it out: config.json (model_type gpt2, GPT2LMHeadModel),
                  model.safetensors ("transformer." names, Conv1D [in, out]
                  weights, attn.bias buffers, the tied lm_head.weight),
                  vocab.json + merges.txt (a small byte-level BPE: the 256
                  byte tokens, 12 merges, <|endoftext|>)
  hf_gpt2_f16/    the same model stored in float16, tokenizer.json instead of
                  vocab/merges (so both tokenizer layouts are imported)
  bad_shape/      model.safetensors with h.1.attn.c_attn.weight stored
                  [3C, C] (PyTorch Linear order) instead of Conv1D [C, 3C]
  expected.json   input ids and the reference logits (T x V) of hf_gpt2 and
                  of hf_gpt2_f16 (computed from the fp16-rounded weights)
With --r50k-dir DIR it instead writes a tiny random model with GPT-2's own
50257-token vocabulary and no tokenizer files (so tunery uses r50k) into DIR:
tests/models/integration.sh exports that as GGUF to check the full tokenizer.
The reference forward is GPT-2's (pre-LayerNorm blocks, gelu_new, tied head)
written here in float64, so the C side (fp32) is compared with the exact answer.
"""
import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "fixtures")
L, NH, C, T_MAX = 2, 2, 32, 64
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"),
          ("o", "n"), ("Ġ", "s"), ("r", "e"), ("Ġ", "w"), ("a", "t"), ("e", "n")]
INPUT = [84, 257, 260, 32, 259, 105, 110, 33, 265, 266, 10, 255]   # T = 12


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def vocab():
    b2u = bytes_to_unicode()
    v = {b2u[b]: b for b in range(256)}
    for a, b in MERGES:
        v[a + b] = len(v)
    v["<|endoftext|>"] = len(v)
    return v


def params(V, gen):
    def rnd(*shape, scale=0.1, off=0.0):
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale + off
    p = {"wte.weight": rnd(V, C), "wpe.weight": rnd(T_MAX, C, scale=0.05)}
    for l in range(L):
        h = f"h.{l}."
        p[h + "ln_1.weight"] = rnd(C, off=1.0)
        p[h + "ln_1.bias"] = rnd(C, scale=0.05)
        p[h + "attn.c_attn.weight"] = rnd(C, 3 * C, scale=0.2)      # Conv1D [in, out]
        p[h + "attn.c_attn.bias"] = rnd(3 * C, scale=0.05)
        p[h + "attn.c_proj.weight"] = rnd(C, C, scale=0.2)
        p[h + "attn.c_proj.bias"] = rnd(C, scale=0.05)
        p[h + "ln_2.weight"] = rnd(C, off=1.0)
        p[h + "ln_2.bias"] = rnd(C, scale=0.05)
        p[h + "mlp.c_fc.weight"] = rnd(C, 4 * C, scale=0.2)
        p[h + "mlp.c_fc.bias"] = rnd(4 * C, scale=0.05)
        p[h + "mlp.c_proj.weight"] = rnd(4 * C, C, scale=0.1)
        p[h + "mlp.c_proj.bias"] = rnd(C, scale=0.05)
    p["ln_f.weight"] = rnd(C, off=1.0)
    p["ln_f.bias"] = rnd(C, scale=0.05)
    return p


def forward(p, ids):
    """GPT-2 forward in float64; logits (T, V)."""
    T = len(ids)
    x = p["wte.weight"][ids] + p["wpe.weight"][:T]
    ln = lambda x, w, b: torch.nn.functional.layer_norm(x, (C,), w, b, 1e-5)
    gelu = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    hs = C // NH
    for l in range(L):
        h = f"h.{l}."
        a = ln(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"])
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q, k, v = (t.view(T, NH, hs).transpose(0, 1) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"]
        m = ln(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"])
        m = gelu(m @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"]
    x = ln(x, p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte.weight"].T


def write_safetensors(path, tensors):
    """The safetensors format by hand: u64 header length, JSON header, data."""
    dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype != torch.float32 \
            else t.contiguous().numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def hf_tensors(p, dtype):
    """HF's state dict: transformer. prefix, attn.bias buffers, tied lm_head."""
    out = {}
    for name, t in p.items():
        out["transformer." + name] = t.to(dtype)
        if name.endswith("attn.c_attn.bias"):
            out["transformer." + name.replace("c_attn.bias", "bias")] = \
                torch.tril(torch.ones(1, 1, T_MAX, T_MAX)).to(dtype)
    out["lm_head.weight"] = p["wte.weight"].to(dtype)
    return out


def config(V, dtype):
    return {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
            "bos_token_id": V - 1, "eos_token_id": V - 1, "layer_norm_epsilon": 1e-05,
            "model_type": "gpt2", "n_ctx": T_MAX, "n_embd": C, "n_head": NH, "n_layer": L,
            "n_positions": T_MAX, "torch_dtype": dtype, "vocab_size": V}


def write_dir(d, p, V, dtype, dname, tokenizer_json):
    os.makedirs(d, exist_ok=True)
    for f in ("vocab.json", "merges.txt", "tokenizer.json"):
        if os.path.exists(os.path.join(d, f)):
            os.remove(os.path.join(d, f))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config(V, dname), f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), hf_tensors(p, dtype))
    voc = vocab()
    if tokenizer_json:
        tj = {"version": "1.0", "truncation": None, "padding": None,
              "added_tokens": [{"id": V - 1, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": True, "special": True}],
              "normalizer": None,
              "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                "use_regex": True},
              "post_processor": None, "decoder": {"type": "ByteLevel"},
              "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                        "end_of_word_suffix": "", "fuse_unk": False, "vocab": voc,
                        "merges": [a + " " + b for a, b in MERGES]}}
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump(tj, f, ensure_ascii=False)
    else:
        with open(os.path.join(d, "vocab.json"), "w") as f:
            json.dump(voc, f, ensure_ascii=False)
        with open(os.path.join(d, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "".join(a + " " + b + "\n" for a, b in MERGES))


def main():
    gen = torch.Generator().manual_seed(20261125)
    V = len(vocab())
    p32 = {k: v.float().double() for k, v in params(V, gen).items()}   # what fp32 storage holds
    p16 = {k: v.half().double() for k, v in p32.items()}
    write_dir(os.path.join(OUT, "hf_gpt2"), p32, V, torch.float32, "float32", False)
    write_dir(os.path.join(OUT, "hf_gpt2_f16"), p16, V, torch.float16, "float16", True)
    bad = dict(p32)
    bad["h.1.attn.c_attn.weight"] = p32["h.1.attn.c_attn.weight"].T.contiguous()
    write_dir(os.path.join(OUT, "bad_shape"), bad, V, torch.float32, "float32", False)
    exp = {"input": INPUT, "vocab_size": V,
           "logits_f32": [round(x, 7) for x in forward(p32, INPUT).flatten().tolist()],
           "logits_f16": [round(x, 7) for x in forward(p16, INPUT).flatten().tolist()]}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(f"wrote {OUT}: V={V} L={L} NH={NH} C={C} n_positions={T_MAX} T={len(INPUT)}")


def write_r50k(d):
    global L, NH, C, T_MAX
    L, NH, C, T_MAX = 1, 1, 8, 16
    gen = torch.Generator().manual_seed(50257)
    p = {k: v.float() for k, v in params(50257, gen).items()}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config(50257, "float32"), f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), hf_tensors(p, torch.float32))


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--r50k-dir":
        write_r50k(sys.argv[2])
    else:
        main()
