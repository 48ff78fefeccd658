#!/usr/bin/env python3
"""Write a synthetic iteration history (JSON Lines) shaped like the real loop's.

    gen-history.py OUT --records N [--dialect iteration|iteration_num]
                   [--code-bytes B] [--seed S] [--code-hash] [--key-late]
                   [--start K]

Each line is one json.dumps(record, ensure_ascii=False), as the Python loop
writes it: strategy code of about B bytes (with non-ASCII text), a metrics
dict of floats and None (now and then NaN or Infinity, which json.dumps
writes as bare literals), feedback, an ISO 8601 timestamp, success, an error
for failed runs.  About one record in eight reuses an earlier record's code,
and one in forty has no code, so by-hash has groups and gaps.  With the
default code size a record is about 7 KB, so 100,000 records are about
700 MB.  The same arguments always give the same bytes.

--dialect iteration      {"iteration", "code", "metrics", "feedback", "error",
                          "timestamp", "success"}
--dialect iteration_num  {"iteration_num", "strategy_code", "execution_result":
                          {"success", "error_message", ...}, "metrics",
                          "feedback_used", "timestamp", ...}
--code-hash  add "code_hash" (SHA-256 hex of the code's UTF-8 bytes)
--key-late   put the iteration number after other members, so readers cannot
             find it at the start of the line
--start K    first iteration number (default 0)
"""

import argparse
import datetime
import hashlib
import json
import random
import sys

CODE_LINES = [
    "def strategy(data):",
    "    close = data.get('price:收盤價')",
    "    volume = data.get('price:成交量')",
    "    roe = data.get('fundamental_features:ROE稅後')",
    "    pb = data.get('price_earning_ratio:股價淨值比')",
    "    momentum = close / close.shift({n}) - 1",
    "    ma = close.rolling({n}).mean()",
    "    cond = (close > ma) & (momentum > {f:.3f})",
    "    cond &= volume.rolling(20).mean() > {n}000",
    "    # 動能策略: keep the top {n} by momentum",
    "    score = momentum.rank(axis=1, pct=True) * {f:.4f}",
    "    position = score[cond].is_largest({n})",
    "    return position.resample('M').last()  # résumé ✓",
    '    """Momentum with a "quality" filter\\n\\tand a stop loss."""',
    "    stop_loss = {f:.2f}",
    "    if roe is None:",
    "        raise ValueError('no ROE data 🚫')",
    "    return sim(position, stop_loss=stop_loss, fee_ratio=1.425/1000)",
]

FEEDBACK = [
    "First iteration - no previous history. Generate a basic momentum strategy.",
    "Sharpe ratio {f:.3f} is below the champion; try a longer lookback ({n} days).",
    "The strategy failed: KeyError on a missing column. 請使用正確的欄位名稱.",
    "Good improvement. Keep the volume filter, tighten the stop loss to {f:.2f}.",
]

ERRORS = [
    "KeyError: 'price:收盤價'",
    "Exception: Strategy execution timed out after 120 seconds",
    "TypeError: unsupported operand type(s) for /: 'NoneType' and 'float'\n"
    "  File \"<strategy>\", line {n}, in strategy",
]


def make_code(rng, size):
    out, n = [], 0
    while n < size:
        line = rng.choice(CODE_LINES).format(n=rng.randint(2, 250),
                                             f=rng.random())
        out.append(line)
        n += len(line.encode()) + 1
    return "\n".join(out) + "\n"


def make_metrics(rng, failed):
    keys = ["sharpe_ratio", "total_return", "annual_return", "max_drawdown",
            "win_rate", "calmar_ratio", "sortino_ratio", "volatility"]
    m = {}
    for k in keys:
        if failed:
            m[k] = None
        else:
            x = rng.random()
            if x < 0.01:
                m[k] = float("nan")
            elif x < 0.015:
                m[k] = float("inf") if rng.random() < 0.5 else float("-inf")
            else:
                m[k] = rng.gauss(0.5, 1.0)
    m["trade_count"] = 0 if failed else rng.randint(10, 5000)
    return m


def make_record(rng, args, i, codes, t0):
    failed = rng.random() < 0.3
    r = rng.random()
    if r < 0.025:
        code = None
    elif r < 0.15 and codes:
        code = rng.choice(codes)
    else:
        code = make_code(rng, args.code_bytes)
        codes.append(code)
        if len(codes) > 64:
            codes.pop(0)
    ts = (t0 + datetime.timedelta(seconds=37 * i,
                                  microseconds=rng.randint(0, 999999)))
    ts = ts.isoformat()
    fb = rng.choice(FEEDBACK).format(n=rng.randint(5, 120), f=rng.random())
    err = rng.choice(ERRORS).format(n=rng.randint(1, 40)) if failed else None
    metrics = make_metrics(rng, failed)
    num = args.start + i
    if args.dialect == "iteration":
        rec = {"iteration": num, "code": code, "metrics": metrics,
               "feedback": fb, "timestamp": ts, "success": not failed}
        if err is not None:
            rec["error"] = err
    else:
        rec = {"iteration_num": num, "generation_method": "llm",
               "strategy_code": code, "strategy_id": None,
               "strategy_generation": None,
               "execution_result": {
                   "success": not failed,
                   "error_type": err.split(":")[0] if err else None,
                   "error_message": err,
                   "execution_time": rng.random() * 30,
                   "sharpe_ratio": metrics["sharpe_ratio"]},
               "metrics": metrics,
               "classification_level": "LEVEL_%d" % rng.randint(0, 3),
               "timestamp": ts, "champion_updated": rng.random() < 0.05,
               "feedback_used": fb}
    if args.code_hash and code is not None:
        rec["code_hash"] = hashlib.sha256(code.encode()).hexdigest()
    if args.key_late:
        key = "iteration" if args.dialect == "iteration" else "iteration_num"
        val = rec.pop(key)
        items = list(rec.items())
        items.insert(2, (key, val))
        rec = dict(items)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--dialect", choices=["iteration", "iteration_num"],
                    default="iteration_num")
    ap.add_argument("--code-bytes", type=int, default=6200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--code-hash", action="store_true")
    ap.add_argument("--key-late", action="store_true")
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()
    if args.records < 0 or args.code_bytes < 0 or args.start < 0:
        ap.error("--records, --code-bytes and --start must be >= 0")

    rng = random.Random(args.seed)
    t0 = datetime.datetime(2025, 10, 1, 9, 0, 0)
    codes = []
    out = sys.stdout if args.out == "-" else open(args.out, "w",
                                                   encoding="utf-8",
                                                   newline="\n")
    with out:
        for i in range(args.records):
            rec = make_record(rng, args, i, codes, t0)
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
