"""The results tables of `docs/results.md`, regenerated from a run folder, so every number has a
source.

    python -m helpers.evaluate.report --run-dir runs/demo      # print the markdown
    python -m helpers.evaluate.report --run-dir runs/demo --write docs/results.md  # the block

Numbers come from the records notebooks 02, 03, 05 and 06 wrote; the 2020 project's reported
ones from `literature.PROJECT_2020`. Each table names the data it was measured on, and the header
names the machine, so demo-set numbers are never mistaken for IRMAS ones.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import pandas as pd

from helpers.core import results
from helpers.core.atomic import atomic_write
from helpers.core.config import ALL_CLASSES, IRMAS_TEST_SPLIT, SPLITS, STAGE1, STAGE2
from helpers.core.layout import RunLayout, as_layout
from helpers.core.literature import PROJECT_2020, PUBLISHED_IRMAS
from helpers.data import dataset, mixing
from helpers.evaluate.analysis import Evaluation

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _cell(value, percent: bool) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if percent:
        return f"{value:.1%}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3g}"
    if isinstance(value, float):
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def _formats(table: pd.DataFrame) -> dict:
    """How each column is written: the columns its maker listed in `attrs["percent"]` as
    percentages, other fractions to three significant digits, counts with separators."""
    percent = set(table.attrs.get("percent", ()))
    return {c: functools.partial(_cell, percent=c in percent) for c in table.columns}


def markdown(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table."""
    formats = _formats(table)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(formats[c](v) for c, v in zip(table.columns, row)) + " |")
    return "\n".join(lines)


def styled(table: pd.DataFrame):
    """`table` formatted for a notebook exactly as `markdown` formats it for the docs."""
    return table.style.format(_formats(table))


def _environment(run: RunLayout) -> dict:
    for path in run.metrics_files(STAGE1):
        record = results.load(path)
        if isinstance(record, results.TrainResult) and record.environment:
            return record.environment
    return {}


def _machine(env: dict) -> str:
    if not env:
        return "an unrecorded machine"
    where = env["cpu"] if env["device"] == "CPU" else f"{env['device']} GPU"
    return (f"{where} ({env['cores']} cores, {env['torch_threads']} torch threads), "
            f"torch {env['torch']}, on {env['date']}")


def stage1_table(run: RunLayout | str | Path) -> pd.DataFrame:
    """This run's Stage-1 numbers beside the 2020 project's reported ones."""
    run = as_layout(run)
    _, _, source = dataset.load_dataset(run)
    rows = []
    for model, r in PROJECT_2020[STAGE1].items():
        rows.append({"model": model, "data": "IRMAS (2020 report, leaky split)",
                     "parameters": r.get("parameters"), "epochs": r.get("epochs"),
                     "best epoch": None, "s/epoch": r.get("seconds_per_epoch"),
                     "val": r["val"], "test": r["test"]})
    names = {"logreg": "logreg (log-mel mean+std)", "forest": "forest (log-mel mean+std)"}
    for kind, label in names.items():
        if run.baseline(kind).is_file():
            m = results.load(run.baseline(kind))
            rows.append({"model": label, "data": f"{source} (this run)",
                         "val": m.val_score, "test": m.test_score})
    for path in run.metrics_files(STAGE1):
        m = results.load(path)
        rows.append({"model": m.model, "data": f"{source} (this run)",
                     "parameters": m.parameters, "epochs": epochs_run(m),
                     "best epoch": m.best_epoch, "s/epoch": m.seconds_per_epoch,
                     "val": m.val_score, "test": m.test_accuracy})
    table = pd.DataFrame(rows)
    table.attrs["percent"] = ["val", "test"]
    return table


def epochs_run(m: results.TrainResult) -> int | str:
    """Epochs trained, and how many batches each when `steps_per_epoch` capped them (a CPU
    demonstration, whose s/epoch is for those batches)."""
    steps = m.training.get("steps_per_epoch")
    return f"{m.epochs_run} × {steps} batches" if steps else m.epochs_run


def stage2_table(run: RunLayout | str | Path) -> pd.DataFrame:
    """This run's Stage-2 numbers beside the 2020 project's reported ones."""
    run = as_layout(run)
    _, _, source = dataset.load_dataset(run)
    rows = [{"model": model, "data": "IRMAS (2020 report, leaky split)",
             "trainable": r["parameters"], "epochs": r.get("epochs"), "best epoch": None,
             "s/epoch": r["seconds_per_epoch"], "per-label acc": r["test"]}
            for model, r in PROJECT_2020[STAGE2].items()]
    for path in run.metrics_files(STAGE2):
        m = results.load(path)
        t, k = m.test["threshold"], m.test["top_k"]
        rows.append({"model": m.model, "data": f"{source} (this run)",
                     "trainable": m.parameters, "epochs": epochs_run(m),
                     "best epoch": m.best_epoch, "s/epoch": m.seconds_per_epoch,
                     "per-label acc": t["per_label_accuracy"], "exact": t["exact_match"],
                     "micro F1": t["micro_f1"], "macro F1": t["macro_f1"],
                     "count acc": t["count_accuracy"], "exact (k known)": k["exact_match"],
                     "exact (val rule)": m.test.get("tuned", {}).get("exact_match"),
                     "LRAP": m.test["lrap"]})
    table = pd.DataFrame(rows)
    table.attrs["percent"] = ["per-label acc", "exact", "micro F1", "macro F1", "count acc",
                              "exact (k known)", "exact (val rule)", "LRAP"]
    return table


def trained_f1_table(trained: dict[str, results.TrainResult]) -> pd.DataFrame:
    """Test F1 per instrument (columns) of each trained model (rows)."""
    table = pd.DataFrame({name: r.test["f1"] for name, r in trained.items()}).T
    table.attrs["percent"] = list(table.columns)
    return table


def beside_published(excerpts: dict[str, Evaluation], run: RunLayout | str | Path
                     ) -> pd.DataFrame:
    """Whole-excerpt micro/macro F1 of this run's models under the published IRMAS results
    (`published_table`)."""
    _, _, source = dataset.load_dataset(run)
    return published_table({name: {**ev.scores(), "items": len(ev)}
                            for name, ev in excerpts.items()}, source,
                           len(dataset.instruments(run)))


def published_table(scores: dict[str, dict], source: str, n_classes: int) -> pd.DataFrame:
    """The published IRMAS results (`literature.PUBLISHED_IRMAS`), each row saying its protocol,
    then a row per model of `scores` (name -> `micro_f1`, `macro_f1`, `items`), saying its data
    (a demo set is synthetic music, not IRMAS) and that its thresholds were chosen on
    validation."""
    rows = [{"method": r["method"], "year": r["year"], "data": "IRMAS test set, 11 instruments",
             "micro F1": r["micro_f1"], "macro F1": r["macro_f1"], "protocol": r["protocol"]}
            for r in PUBLISHED_IRMAS]
    data = "IRMAS test set" if source == "irmas" else "demo set (synthetic, not IRMAS)"
    rule = ("Stage 1: every instrument at half the top probability or more; Stage 2: the "
            "naming rule chosen on the validation mixes; 3 s windows")
    for name, s in scores.items():
        rows.append({"method": f"this run: {name}", "year": None,
                     "data": f"{data}, {n_classes} instruments, {s['items']} excerpts",
                     "micro F1": s["micro_f1"], "macro F1": s["macro_f1"], "protocol": rule})
    table = pd.DataFrame(rows)
    table.attrs["percent"] = ["micro F1", "macro F1"]
    return table


def excerpt_table(scores: dict[str, dict]) -> pd.DataFrame:
    """Whole-excerpt scores per model (from the analysis record) as a table."""
    classes = list(next(iter(scores.values()))["f1"])
    table = pd.DataFrame([{"model": name, "excerpts": s["items"], "exact match": s["exact_match"],
                           "micro F1": s["micro_f1"], "macro F1": s["macro_f1"],
                           "LRAP": s.get("lrap"), **{f"F1 {c}": s["f1"][c] for c in classes}}
                          for name, s in scores.items()])
    table.attrs["percent"] = ["exact match", "micro F1", "macro F1", "LRAP",
                              *(f"F1 {c}" for c in classes)]
    return table


# What each table reads from a record, and the scores that are fractions (in [0, 1]).
NEEDED = {STAGE1: {"accuracy": None},
          STAGE2: {"threshold": {"per_label_accuracy", "exact_match", "micro_f1", "macro_f1",
                                 "count_accuracy"}, "top_k": {"exact_match"}, "lrap": None}}
FRACTIONS = {"accuracy", "exact_match", "micro_f1", "macro_f1", "per_label_accuracy",
             "count_accuracy", "lrap", "val_score"}
EXCERPT_FIELDS = {"items", "exact_match", "micro_f1", "macro_f1", "f1"}


def _check_fractions(where: Path, data, path: str = "") -> None:
    """Every score named in `FRACTIONS`, at any depth, is a number from 0 to 1: a 7.5 would
    print as 750.0%."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key in FRACTIONS and value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool)
                or not 0 <= value <= 1):
            raise ValueError(f"{where}: {path}{key} is {value!r}, not a score from 0 to 1; run "
                             "the notebook that wrote it again")
        _check_fractions(where, value, f"{path}{key}.")


def check_records(run: RunLayout) -> None:
    """Refuse a run folder whose tables would come out shorter or wrong without a word: a
    model folder with a checkpoint but no `metrics.json`, or a record without the fields
    its table reads. The error names the file."""
    for stage, needed in NEEDED.items():
        folder = run.root / stage
        for name in sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []:
            files = run.model(stage, name)
            trained = files.best.is_file() or files.last.is_file()
            if trained and not files.metrics.is_file():
                raise ValueError(f"missing: {files.metrics} (the folder holds a checkpoint but "
                                 "no results record): train that model again or delete its "
                                 "folder")
        for path in run.metrics_files(stage):
            record = results.load(path)
            if isinstance(record, results.BaselineResult):
                _check_fractions(path, {"val_score": record.val_score,
                                        "accuracy": record.test_score})
                continue
            test = record.test if isinstance(record.test, dict) else {}
            for key, inner in needed.items():
                if key not in test or (inner and not (isinstance(test[key], dict)
                                                      and inner <= set(test[key]))):
                    raise ValueError(f"{path}: its test scores lack {key!r}"
                                     f"{' (' + ', '.join(sorted(inner)) + ')' if inner else ''}"
                                     "; run the notebook that wrote it again")
            _check_fractions(path, {"val_score": record.val_score, "test": test})


def _excerpts(run: RunLayout) -> str:
    if not run.analysis.is_file():
        return "Test excerpts: not evaluated in this run (notebook 06 writes `analysis/`)."
    data = dataset.read_json(run.analysis, "06_analysis")
    rerun = "run notebooks/06_analysis.ipynb again to rewrite it"
    settings = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(settings, dict):
        raise ValueError(f"{run.analysis}: not the record notebook 06 writes; {rerun}")
    if "excerpts" not in data:
        if settings.get("evaluate_excerpts") is False:
            return ("Test excerpts: not evaluated in this run (notebook 06 ran with "
                    "`evaluate_excerpts = False`).")
        raise ValueError(f"{run.analysis}: holds no excerpt scores and does not say they were "
                         f"skipped; {rerun}")
    excerpts = data["excerpts"]
    if (not isinstance(excerpts, dict) or not excerpts
            or not all(isinstance(s, dict) and set(s) >= EXCERPT_FIELDS
                       and isinstance(s["f1"], dict) for s in excerpts.values())):
        raise ValueError(f"{run.analysis}: its excerpt scores are not what notebook 06 writes "
                         f"(each model needs {', '.join(sorted(EXCERPT_FIELDS))}); {rerun}")
    _check_fractions(run.analysis, {"excerpts": excerpts})
    hop = settings.get("hop_seconds")
    text = (f"Whole test excerpts ({data['source']}), 3 s windows every {hop} s, probabilities "
            "averaged per excerpt (`analysis/metrics.json`):\n\n"
            + markdown(excerpt_table(excerpts)))
    n_classes = len(next(iter(excerpts.values()))["f1"])
    if n_classes == len(ALL_CLASSES):
        text += ("\n\nBeside the published IRMAS results (eleven instruments; IRMAS's official "
                 "test set for them, this run's test excerpts for us):\n\n"
                 + markdown(published_table(excerpts, data["source"], n_classes)))
    return text


def results_markdown(run: RunLayout | str | Path) -> str:
    """The results block: where it was measured, Stage 1, Stage 2, whole test excerpts."""
    run = as_layout(run)
    run_dir = run.root
    manifest, _, source = dataset.load_dataset(run)
    check_records(run)
    clips = manifest["split"].value_counts()
    sizes = (", ".join(f"{clips.get(s, 0):,} {s}" for s in SPLITS) + " clips, "
             f"{clips.get(IRMAS_TEST_SPLIT, 0):,} test excerpts")
    command = f"python -m helpers.evaluate.report --run-dir {run_dir} --write docs/results.md"
    header = (f"Generated by `{command}` from the run folder `{run_dir}` (data: **{source}**, "
              f"instruments: {', '.join(dataset.instruments(run))}; {sizes}), measured on "
              f"{_machine(_environment(run))}. Rows marked "
              "*2020 report* are the 2020 project's IRMAS numbers on its leaky split.")
    if source == "demo":
        header += " Demo-set numbers are **not** IRMAS numbers."
    return "\n\n".join([
        header,
        "#### Stage 1: one instrument per 3 s test clip (accuracy)",
        markdown(stage1_table(run)),
        "#### Stage 2: every instrument in a test mix (named at p ≥ 0.5; *k known*: the k most "
        "probable)",
        _stage2(run),
        "#### Whole test excerpts",
        _excerpts(run),
    ])


def _stage2(run: RunLayout) -> str:
    if not run.metrics_files(STAGE2):
        return "Not trained in this run (notebook 05 writes `stage2/`)."
    mixes = ", ".join(f"{len(mixing.load_plan(run.mixes(s))[0]):,} {s}" for s in SPLITS)
    return f"Mixes: {mixes}.\n\n{markdown(stage2_table(run))}"


def replace_block(text: str, block: str, name: str = "docs/results.md") -> str:
    """`text` with everything between the results markers replaced by `block`; a file with
    other than exactly one pair, in order, is refused (which pair would be meant?)."""
    starts, ends = text.count(START), text.count(END)
    if (starts, ends) != (1, 1) or text.index(START) > text.index(END):
        found = (f"{starts} {START} and {ends} {END}" if (starts, ends) != (1, 1)
                 else f"{END} before {START}")
        raise ValueError(f"{name} needs exactly one {START} … {END} block to replace, and has "
                         f"{found}; keep one pair where the results belong")
    head, rest = text.split(START)
    return f"{head}{START}\n{block}\n{END}{rest.split(END)[1]}"


def write_block(target: Path, block: str) -> Path:
    """Replace the results block of `target` in place: through a symlink to the file it
    names, keeping that file's mode, written atomically."""
    real = target.resolve()
    text = replace_block(real.read_text(), block, str(target))
    mode = real.stat().st_mode & 0o7777
    atomic_write(real, lambda tmp: (tmp.write_text(text), tmp.chmod(mode)))
    return real


def save(run: RunLayout | str | Path) -> Path:
    """Write the run's results tables to `run/report.md` (on Drive in Colab), atomically; a
    clone of the repository puts the same tables into docs/results.md with `--write`."""
    run = as_layout(run)
    block = results_markdown(run.root)
    return atomic_write(run.report, lambda tmp: tmp.write_text(block + "\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the results of docs/results.md.")
    parser.add_argument("--run-dir", required=True, type=Path, help="e.g. runs/demo")
    parser.add_argument("--write", type=Path, metavar="MARKDOWN",
                        help="replace the results block in this file instead of printing")
    args = parser.parse_args(argv)
    try:
        block = results_markdown(args.run_dir)
        if args.write:
            write_block(args.write, block)
            print(f"updated the results block of {args.write} from {args.run_dir}")
        else:
            print(block)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
