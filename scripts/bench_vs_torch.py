#!/usr/bin/python3
"""bench_vs_torch.py: tunery's engine against PyTorch, interleaved, in one run.

Why: on a machine shared with other jobs, two benchmarks taken minutes apart
measure two different machines. This script alternates the two sides round by
round (tunery, then PyTorch, then tunery again ...) for the training step and
for prefill, and reports per side the median wall time and the median CPU
time (all threads) per step, and the ratio of the medians. CPU time is the
figure that survives a busy machine; wall time is the one a quiet machine
gives. Both sides get the same OpenMP wait policy (--wait) and thread count.

PyTorch runs through scripts/bench_torch.py's child mode in the configuration
that measured best on these machines (2 threads, oneDNN on, glibc malloc
tunables that stop page faults; OPENBLAS_CORETYPE removed for it only), and
with --precision bf16 also in its own bf16 autocast, since against tunery's
bf16 mode PyTorch's best configuration includes its mixed precision. Prefill
and batch-1 decode are compared too (decode in wall time only). Run
scripts/bench_torch.py alone to search that configuration again.

    /usr/bin/python3 scripts/bench_vs_torch.py [--rounds 3] [--shapes 4x64,8x128]
        [--steps 5] [--wait passive|active] [--tunery-wait passive|active]
        [--no-prefill] [--no-train] [--precision fp32|bf16] [--tunery PATH]

--no-train runs only the prefill/decode comparison; --tunery names the
binary to measure (default: ./tunery of this checkout), e.g. an older build
for a before/after in the same run.

Prints one JSON line per run, then one summary line per shape.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MALLOC_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TOP_PAD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def json_lines(cmd, env):
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    out = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    if not out:
        sys.exit("bench_vs_torch: %s printed nothing: %s" % (cmd[0], r.stderr.strip()[-300:]))
    return out


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__.strip())
        return
    rounds, steps = int(opt("--rounds", "3")), int(opt("--steps", "5"))
    shapes = [tuple(int(x) for x in s.split("x")) for s in opt("--shapes", "4x64").split(",")]
    if "--no-train" in sys.argv:
        shapes = []
    wait, prec, threads = opt("--wait", "passive"), opt("--precision", "fp32"), int(opt("--threads", "2"))
    base = dict(os.environ, OMP_NUM_THREADS=str(threads))
    base.pop("OMP_WAIT_POLICY", None)
    if wait == "passive":
        base["OMP_WAIT_POLICY"] = "PASSIVE"
    torch_env = dict(base, **MALLOC_ENV)
    torch_env.pop("OPENBLAS_CORETYPE", None)
    # --tunery-wait: tunery's side only (e.g. "active": libgomp's default, what
    # `tunery serve` runs completions with), PyTorch keeping --wait
    twait = opt("--tunery-wait", wait)
    if twait != wait:
        base = dict(base)
        base.pop("OMP_WAIT_POLICY", None)
        if twait == "passive":
            base["OMP_WAIT_POLICY"] = "PASSIVE"
    tunery = os.path.abspath(opt("--tunery", os.path.join(ROOT, "tunery")))
    torch_py = os.path.join(HERE, "bench_torch.py")
    res = {}

    def add(key, side, wall, cpu):
        res.setdefault(key, {}).setdefault(side, []).append((wall, cpu))

    for r in range(rounds):
        for B, T in shapes:
            t = json_lines([tunery, "bench", "train", "--batch", str(B), "--seq", str(T), "--steps", str(steps),
                            "--precision", prec], base)[0]
            print(json.dumps(dict(t, round=r)), flush=True)
            add("train_B%dT%d" % (B, T), "tunery", t["ms_per_step_median"], t["cpu_ms_per_step_median"])
            spec = {"kind": "train", "threads": threads, "mkldnn": 1, "env": "passive+malloc" if wait == "passive"
                    else "malloc", "bf16": 0, "B": B, "T": T, "steps": steps}
            p = json_lines(["/usr/bin/python3", torch_py, "--child", json.dumps(spec)], torch_env)[0]
            print(json.dumps(dict(p, round=r)), flush=True)
            add("train_B%dT%d" % (B, T), "torch", p["ms_per_step_median"], p["cpu_ms_per_step_median"])
            if prec == "bf16":
                # against tunery's bf16 mode, PyTorch's own mixed precision is part of "its best configuration"
                p = json_lines(["/usr/bin/python3", torch_py, "--child", json.dumps(dict(spec, bf16=1))], torch_env)[0]
                print(json.dumps(dict(p, round=r)), flush=True)
                add("train_B%dT%d" % (B, T), "torch_bf16_autocast", p["ms_per_step_median"], p["cpu_ms_per_step_median"])
        if "--no-prefill" in sys.argv:
            continue
        g = json_lines([tunery, "bench", "generate", "--no-torch", "--reps", "5", "--steps", "4"], base)
        pre = [x for x in g if x.get("metric") == "prefill_tokens_per_s"][0]
        print(json.dumps(dict(pre, round=r)), flush=True)
        add("prefill_T128", "tunery", pre["ms"], pre["cpu_ms"])
        spec = {"kind": "generate", "threads": threads, "mkldnn": 1, "env": "passive+malloc", "bf16": 0,
                "B": 1, "T": 128, "steps": 1, "decode": 4}
        p = json_lines(["/usr/bin/python3", torch_py, "--child", json.dumps(spec)], torch_env)[0]
        print(json.dumps(dict(p, round=r)), flush=True)
        add("prefill_T128", "torch_full_logits", p["prefill_T128_ms"], p["prefill_T128_cpu_ms"])
        add("prefill_T128", "torch_last_logits", p["prefill_T128_last_logits_ms"], p["prefill_T128_last_logits_cpu_ms"])
        # decode at batch 1 from a 128-token context: wall ms per token only (neither side reports its CPU)
        d1 = [x for x in g if x.get("metric") == "decode_tokens_per_s_batch1"][0]
        add("decode_b1", "tunery", d1["ms_per_step"], None)
        add("decode_b1", "torch", p["decode_b1_ms_per_token"], None)

    load = open("/proc/loadavg").read().split()[0]
    for key, sides in res.items():
        s = {"bench": "vs_torch", "what": key, "rounds": rounds, "wait": wait, "tunery_wait": twait, "precision": prec,
             "threads": threads, "loadavg_1m_at_end": float(load)}
        for side, v in sides.items():
            s[side + "_wall_ms_median"] = round(median([w for w, _ in v]), 2)
            if v[0][1] is not None:
                s[side + "_cpu_ms_median"] = round(median([c for _, c in v]), 1)
        for side in sides:
            if side != "tunery":
                s["ratio_wall_" + side] = round(s[side + "_wall_ms_median"] / s["tunery_wall_ms_median"], 3)
                if side + "_cpu_ms_median" in s:
                    s["ratio_cpu_" + side] = round(s[side + "_cpu_ms_median"] / s["tunery_cpu_ms_median"], 3)
        print(json.dumps(s), flush=True)


if __name__ == "__main__":
    main()
