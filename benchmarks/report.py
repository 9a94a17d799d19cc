"""Write the GPU result tables from the records in ``benchmarks/results/``.

    python benchmarks/report.py            # print the tables (Markdown)
    python benchmarks/report.py --write    # docs/gpu.rst, the GPU tables of benchmarks/README.md
    python benchmarks/report.py --check    # exit 1 if either file differs from the records

The GPU suites (``bench_gpu_em.py``, ``bench_gpu_classifier.py``, ``bench_gpu_text.py``,
``probes/ngpt_step.py``, ``bench_ngpt.py``) run on a GPU machine and write these records;
this script is the only place their figures are turned into tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
DOCS_PAGE = HERE.parent / "docs" / "gpu.rst"
DEFAULT_EM = "device loop, fused E-step, matmul_precision='tf32x3'"
BEGIN, END = "<!-- gpu tables: begin (benchmarks/report.py) -->", "<!-- gpu tables: end -->"


@dataclass
class Table:
    title: str
    command: str
    intro: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


def records(name: str) -> list[dict]:
    """The JSON records of a results file (JSON lines; plain-text lines are skipped)."""
    out = []
    for line in (RESULTS / name).read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def em_tables() -> tuple[list[Table], dict]:
    recs = records("gpu_em_h200.jsonl")
    gpu = recs[0]
    bound = next(r for r in recs if r.get("bound") == "per EM iteration")
    compute_ms = bound["compute_bound_ms"]
    speed = Table(
        "EM iteration on a GPU",
        "python benchmarks/bench_gpu_em.py",
        f"n = 10⁶, d = 256, k = 100, float32, soft EM; {gpu['gpu']}, torch {gpu['torch']}; "
        "ms per iteration (E-step + M-step), mean of 50 after warm-up, through the "
        "estimator's own runners. The default is the fused 3×TF32 E-step "
        "(``matmul_precision='tf32x3'``).",
        ["path", "ms / iteration", "× FP32 compute bound"],
    )
    for r in recs:
        if "iteration" in r:
            # the records name the default of their day; the default is now DEFAULT_EM
            label = r["iteration"].replace(" (default)", "")
            label += " (default)" if label == DEFAULT_EM else ""
            speed.rows.append([label, f"{r['ms']:.2f}", f"{r['ms'] / compute_ms:.2f}"])
    speed.rows.append(
        [
            f"bound: 2 GEMMs at the measured {bound['fp32_TFLOPs_square_8192']:.1f} TFLOP/s FP32",
            f"{compute_ms:.2f}",
            "1",
        ]
    )
    speed.rows.append(
        [
            f"bound: memory traffic at {bound['copy_bandwidth_TBps']:.2f} TB/s",
            f"{bound['memory_bound_ms']:.2f}",
            "",
        ]
    )
    accuracy = Table(
        "EM E-step accuracy",
        "python benchmarks/bench_gpu_em.py",
        "Largest error against a float64 reference of the same float32 inputs over the "
        "10⁶ × 100 matrix; counts and resultants relative.",
        ["E-step", "responsibilities", "log-sum-exp (abs.)", "counts", "resultants"],
    )
    for r in recs:
        if "accuracy" in r:
            accuracy.rows.append(
                [r["accuracy"]]
                + [
                    f"{r[k]:.1e}"
                    for k in (
                        "max_abs_resp",
                        "max_abs_log_norm",
                        "max_rel_counts",
                        "max_rel_resultants",
                    )
                ]
            )
    eager = next(r for r in recs if r.get("iteration") == DEFAULT_EM)
    compiled = next(
        r for r in recs if r.get("iteration") == "device loop, fused E-step, compile=True, 'tf32x3'"
    )
    agreement = next(r for r in recs if "agreement" in r)
    facts = {
        "em_eager": eager["ms"] / compute_ms,
        "em_compiled": compiled["ms"] / compute_ms,
        "em_agreement": max(agreement["max_abs_mean_diff"], agreement["max_rel_kappa_diff"]),
        "em_gpu": gpu["gpu"],
    }
    return [speed, accuracy], facts


def classifier_table() -> tuple[Table, dict]:
    recs = records("gpu_classifier_h100.jsonl")
    device = recs[0]
    bound = next(r for r in recs if r.get("bound") == "epoch")
    table = Table(
        "SphericalClassifier epoch on a GPU",
        "python benchmarks/bench_gpu_classifier.py",
        f"n = 10⁶, d = 384, 10 classes, float32, the linear model trained by Adam; "
        f"{device['device']}, torch {device['torch']}; ms per epoch, median of epochs 2–5. "
        "The default captures the epoch as a CUDA graph; the skorch loop and a hand-written "
        f"eager torch loop are the alternatives. Memory bound of an epoch: {bound['ms']:.2f} ms.",
        [
            "batch size",
            "steps",
            "CUDA graph (default)",
            "skorch loop",
            "hand-written",
            "× memory bound",
        ],
    )
    facts = {}
    for r in recs:
        if "epoch" in r:
            table.rows.append(
                [
                    f"{r['batch_size']:,}",
                    str(r["steps"]),
                    f"{1000 * r['graph_epoch_s']:.1f}",
                    f"{1000 * r['skorch_loop_epoch_s']:,.0f}",
                    f"{1000 * r['hand_written_epoch_s']:,.0f}",
                    f"{r['graph_epoch_over_memory_bound']:.1f}",
                ]
            )
            if r["batch_size"] == 4096:
                facts["classifier_bound"] = r["graph_epoch_over_memory_bound"]
    facts["classifier_gpu"] = device["device"]
    return table, facts


def text_table() -> Table:
    recs = records("gpu_text_h200.jsonl")
    gpu = recs[0]
    table = Table(
        "NGPTTextClassifier epoch on a GPU",
        "python benchmarks/bench_gpu_text.py",
        f"4,000 synthetic texts of 8–256 words, 4 classes; {gpu['gpu']}, torch {gpu['torch']}; "
        "seconds per epoch after the first. The default on CUDA captures one graph per batch "
        "shape.",
        ["shape", "model", "eager", "CUDA-graph steps (default)", "compile + graph steps"],
    )
    by = {(r["shape"], r["architecture"], r["mode"]): r for r in recs if "architecture" in r}
    for shape in dict.fromkeys(r["shape"] for r in recs if "shape" in r):
        for arch, name in (("transformer", "pre-LN"), ("ngpt", "nGPT")):
            cells = [
                f"{by[shape, arch, mode]['later_epoch_s']:.3f}"
                for mode in ("eager", "graph", "compile+graph")
            ]
            table.rows.append([shape.replace("_", " "), name, *cells])
    return table


def ngpt_tables() -> tuple[list[Table], dict]:
    step = Table(
        "nGPT training step against the pre-LN Transformer",
        "python -m benchmarks.probes.ngpt_step",
        "One training step (forward, backward, Adam and for nGPT the renormalisation), bf16 "
        "autocast, random tokens, CUDA-graph steps as the estimator runs them; ms per step, "
        "mean of 50 after warm-up.",
        ["shape", "GPU", "pre-LN ms", "nGPT ms", "nGPT / pre-LN"],
    )
    facts = {}
    for name, shape in (
        ("ngpt_step_defaults_mlp2_h200.json", "estimator defaults (d = 64, 1 layer, batch 64)"),
        ("ngpt_step_qk_h200.json", "d = 256, 4 layers, batch 128"),
    ):
        r = records(name)[-1]
        step.rows.append(
            [
                shape,
                r["gpu"],
                f"{r['preln_graph_ms']:.2f}",
                f"{r['ngpt_library_graph_ms']:.2f}",
                f"{r['ngpt_library_graph_ratio']:.2f}",
            ]
        )
        facts["step_" + ("defaults" if "defaults" in name else "d256")] = r[
            "ngpt_library_graph_ratio"
        ]
    for name, shape in (
        ("ngpt_fit1000_defaults_mlp2_h200.json", "estimator defaults, 1,000-step fit (s)"),
        ("ngpt_fit1000_graph_h200.json", "d = 256, 4 layers, 1,000-step fit (s)"),
    ):
        r = records(name)[-1]
        step.rows.append(
            [
                shape + ", fresh process",
                r["gpu"],
                f"{r['transformer_graph_fit1000_cold_s']:.2f}",
                f"{r['ngpt_graph_fit1000_cold_s']:.2f}",
                f"{r['ratio_graph_fit1000_cold']:.2f}",
            ]
        )
    summaries = [
        r
        for r in records("ngpt_graph_time_cosine_h200.jsonl")
        if r["phase"] == "graph_time_summary"
    ]
    setup = records("ngpt_graph_time_cosine_h200.jsonl")[0]
    ratios = [r["within_run_ratio"] for r in summaries]
    wall = Table(
        "nGPT wall time to the pre-LN Transformer's loss",
        "python benchmarks/bench_ngpt.py --phase graph_time",
        "BBC News in 255-byte windows, d = 256, 4 layers, CUDA-graph steps for both; nGPT with "
        "the estimator's schedule. Per seed: the time of nGPT's first validation point at or "
        f"below the baseline's final validation loss, over the baseline's time; {setup['device']}.",
        [
            "seed",
            "baseline loss",
            "baseline s",
            "nGPT step reaching it",
            "nGPT time / baseline time",
        ],
    )
    for r in summaries:
        wall.rows.append(
            [
                str(r["seed"]),
                f"{r['target']:.3f}",
                f"{r['baseline_seconds']:.1f}",
                str(r["within_run_step"]),
                f"{r['within_run_ratio']:.2f}",
            ]
        )
    wall.rows.append(["mean", "", "", "", f"{statistics.mean(ratios):.2f}"])
    facts["wall_mean"] = statistics.mean(ratios)
    return [step, wall], facts


def targets_table(facts: dict) -> Table:
    def status(value: float, limit: float) -> str:
        return "met" if value <= limit else "**missed**"

    table = Table(
        "GPU targets",
        "",
        "What each GPU path must reach, from the tables below.",
        ["target", "measured", "status"],
    )
    table.rows += [
        [
            "EM iteration (n = 10⁶, d = 256, k = 100, FP32) ≤ 1.5× the FP32 compute bound",
            f"{facts['em_eager']:.2f}× default, {facts['em_compiled']:.2f}× with ``compile=True``",
            f"{status(facts['em_compiled'], 1.5)} with ``compile=True``; "
            f"default {status(facts['em_eager'], 1.5)}",
        ],
        [
            "EM CPU/GPU agreement in float64 ≤ 1e-12",
            f"{facts['em_agreement']:.1e}",
            status(facts["em_agreement"], 1e-12),
        ],
        [
            "SphericalClassifier epoch (batch 4,096) ≤ 20× the memory bound",
            f"{facts['classifier_bound']:.1f}×",
            status(facts["classifier_bound"], 20),
        ],
        [
            "nGPT step ≤ 1.15× the pre-LN Transformer's",
            f"{facts['step_defaults']:.2f}× at the defaults, {facts['step_d256']:.2f}× at d = 256",
            status(max(facts["step_defaults"], facts["step_d256"]), 1.15),
        ],
        [
            "nGPT wall time to the pre-LN loss ≤ 0.67× (mean over seeds)",
            f"{facts['wall_mean']:.2f}×",
            status(facts["wall_mean"], 0.67),
        ],
    ]
    return table


def all_tables() -> list[Table]:
    em, em_facts = em_tables()
    classifier, classifier_facts = classifier_table()
    ngpt, ngpt_facts = ngpt_tables()
    targets = targets_table(em_facts | classifier_facts | ngpt_facts)
    return [targets, *em, classifier, text_table(), *ngpt]


def markdown(tables: list[Table]) -> str:
    out = []
    for t in tables:
        out.append(f"### {t.title}" + (f": `{t.command}`" if t.command else ""))
        out.append("")
        out.append(t.intro.replace("``", "`"))
        out.append("")
        out.append("| " + " | ".join(t.header) + " |")
        out.append("|" + "---|" * len(t.header))
        out += ["| " + " | ".join(c.replace("``", "`") for c in row) + " |" for row in t.rows]
        out.append("")
    return "\n".join(out)


def rst(tables: list[Table]) -> str:
    def cell(text: str) -> str:
        return '"' + text.replace("**", "").replace('"', '""') + '"'

    out = [
        "GPU results",
        "===========",
        "",
        "Generated by ``python benchmarks/report.py --write`` from the records in",
        "``benchmarks/results/``; the commands that measure them are in each table's title.",
        "CPU figures are on the :doc:`panel` page.",
        "",
    ]
    for t in tables:
        out += [t.title, "-" * len(t.title), ""]
        if t.command:
            out += [f"``{t.command}``", ""]
        out += [
            t.intro,
            "",
            ".. csv-table::",
            "   :header: " + ", ".join(cell(h) for h in t.header),
            "",
        ]
        out += ["   " + ", ".join(cell(c) for c in row) for row in t.rows]
        out.append("")
    return "\n".join(out)


def readme_with(tables: list[Table]) -> str:
    content = README.read_text()
    start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
    return content[:start] + "\n\n" + markdown(tables) + "\n" + content[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--write", action="store_true", help="write docs/gpu.rst and benchmarks/README.md"
    )
    mode.add_argument("--check", action="store_true", help="fail if either file is out of date")
    args = parser.parse_args(argv)
    tables = all_tables()
    if args.write:
        DOCS_PAGE.write_text(rst(tables))
        README.write_text(readme_with(tables))
    elif args.check:
        stale = [
            p.name
            for p, text in ((DOCS_PAGE, rst(tables)), (README, readme_with(tables)))
            if p.read_text() != text
        ]
        if stale:
            print(
                f"out of date with benchmarks/results/: {stale}; "
                "run python benchmarks/report.py --write"
            )
            return 1
    else:
        print(markdown(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
