"""Where a training step's time goes: a Chrome trace of `unmix bench step --profile FILE` grouped by kind.

Every operator that is not inside another operator (on the thread that runs the step: forward, loss,
the autograd engine's backward nodes and the optimizer on CPU) is charged to one kind by its name; a
backward node ("autograd::engine::evaluate_function: ConvolutionBackward0") by its node's name.
Outermost operators of the "backward and update" range that are not backward nodes are the
optimizer's update (and the method's after-step update). What no operator covers is the time
between operators (unmix's own code, allocation, dispatch).

    python3 bench/profile_summary.py TRACE.json [--steps N] [--json]
"""

import argparse
import json
import re
import sys
from collections import defaultdict

KINDS = [
    ("convolution", r"conv|Convolution"),
    ("batch norm", r"batch_norm|BatchNorm"),
    ("ReLU", r"relu|Relu|threshold|Threshold"),
    ("pooling", r"pool|Pool"),
    ("linear layers and similarities (matrix products)", r"addmm|\bmm\b|aten::mm|matmul|linear|Mm|Addmm|bmm|Bmm"),
    ("softmax and loss", r"softmax|Softmax|nll|Nll|logsumexp|LogSumExp|cross_entropy"),
    ("copies, concatenation, reordering", r"copy|cat\b|aten::cat|Cat|index_select|IndexSelect|clone|Clone|contiguous|_to_copy|ToCopy|repeat|Repeat|stack|Stack|flip|Flip|permute|Permute|transpose|Transpose|gather|Gather|scatter|Scatter"),
    ("element-wise (residual add, mixing, normalize)", r"add|Add|mul|Mul|sub|Sub|div|Div|norm|Norm|sum|Sum|mean|Mean|exp|Exp|sqrt|Sqrt|pow|Pow|where|Where|neg|Neg|clamp|Clamp|fill|zero|ones|zeros|empty|full|rand|normal"),
]


def kind_of(name):
    node = name.split("evaluate_function: ", 1)[1] if "evaluate_function: " in name else name
    for kind, pattern in KINDS:
        if re.search(pattern, node):
            return kind
    return "other (views, reshapes, ...)"


def outermost(events):
    """The events not nested in an earlier one (per thread, sorted by start, longest first)."""
    out, end = [], -1.0
    for e in sorted(events, key=lambda e: (e["ts"], -e["dur"])):
        if e["ts"] >= end:
            out.append(e)
            end = e["ts"] + e["dur"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=0, help="steps in the trace (default: the forward ranges counted)")
    ap.add_argument("--json", action="store_true", help="print the shares as one JSON object")
    a = ap.parse_args()
    events = [e for e in json.load(open(a.trace))["traceEvents"] if e.get("ph") == "X" and "dur" in e]
    ranges = [e for e in events if e.get("cat") == "user_annotation"]
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    if not ranges:
        sys.exit(f"{a.trace}: no 'forward and loss' / 'backward and update' ranges; record it with unmix bench step --profile")
    tid = ranges[0]["tid"]
    top = outermost([e for e in ops if e["tid"] == tid])
    steps = a.steps or sum(1 for r in ranges if r["name"] == "forward and loss")
    total = sum(r["dur"] for r in ranges)
    by_phase = defaultdict(float)
    by_kind = defaultdict(float)
    covered = 0.0
    for r in ranges:
        by_phase[r["name"]] += r["dur"]
        lo, hi = r["ts"], r["ts"] + r["dur"]
        for e in top:
            if lo <= e["ts"] < hi:
                covered += e["dur"]
                backward = "evaluate_function" in e["name"]
                if r["name"] == "backward and update" and not backward:
                    by_kind["optimizer and after-step update"] += e["dur"]
                else:
                    by_kind[kind_of(e["name"])] += e["dur"]
    by_kind["between operators (unmix's code, dispatch)"] = total - covered
    rows = sorted(by_kind.items(), key=lambda kv: -kv[1])
    if a.json:
        print(json.dumps({"steps": steps, "ms_per_step": total / 1e3 / steps,
                          "phases": {k: v / total for k, v in by_phase.items()}, "kinds": {k: v / total for k, v in rows}}))
        return
    print(f"{steps} steps, {total / 1e3 / steps:.1f} ms per step; " +
          ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in by_phase.items()))
    print(f"{'kind':<52} {'ms/step':>8} {'share':>7}")
    for k, v in rows:
        print(f"{k:<52} {v / 1e3 / steps:8.1f} {100 * v / total:6.1f} %")


if __name__ == "__main__":
    main()
