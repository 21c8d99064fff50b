"""The README's results tables, regenerated from a run folder, so every number has a source.

    python -m helpers.report --run-dir runs/demo                  # print the markdown
    python -m helpers.report --run-dir runs/demo --write README.md  # replace the results block

Numbers come from the records notebooks 02, 03, 05 and 06 wrote; the 2020 project's reported
ones from `config.PROJECT_2020`. Each table names the data it was measured on, and the header
names the machine, so demo-set numbers are never mistaken for IRMAS ones.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

import pandas as pd

from helpers import mixing, results, runs
from helpers.analysis import published_table
from helpers.atomic import atomic_write
from helpers.config import ALL_CLASSES, IRMAS_TEST_SPLIT, SPLITS
from helpers.layout import RunLayout, as_layout
from helpers.stage1 import STAGE as STAGE1
from helpers.stage1 import results_table as stage1_table
from helpers.stage2 import STAGE as STAGE2
from helpers.stage2 import results_table as stage2_table

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
    """`table` formatted for a notebook exactly as `markdown` formats it for the README."""
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


def _excerpts(run: RunLayout) -> str:
    if not run.analysis.is_file():
        return "Test excerpts: not evaluated in this run (notebook 06 writes `analysis/`)."
    data = runs.read_json(run.analysis, "06_analysis")
    if "excerpts" not in data:
        return ("Test excerpts: not evaluated in this run (notebook 06 ran with "
                "`evaluate_excerpts = False`).")
    hop = data["settings"].get("hop_seconds")
    text = (f"Whole test excerpts ({data['source']}), 3 s windows every {hop} s, probabilities "
            "averaged per excerpt (`analysis/metrics.json`):\n\n"
            + markdown(excerpt_table(data["excerpts"])))
    n_classes = len(next(iter(data["excerpts"].values()))["f1"])
    if n_classes == len(ALL_CLASSES):
        text += ("\n\nBeside the published IRMAS results (eleven instruments; IRMAS's official "
                 "test set for them, this run's test excerpts for us):\n\n"
                 + markdown(published_table(data["excerpts"], data["source"], n_classes)))
    return text


def results_markdown(run: RunLayout | str | Path) -> str:
    """The results block: where it was measured, Stage 1, Stage 2, whole test excerpts."""
    run = as_layout(run)
    run_dir = run.root
    manifest, _, source = runs.load_dataset(run)
    clips = manifest["split"].value_counts()
    sizes = (", ".join(f"{clips.get(s, 0):,} {s}" for s in SPLITS) + " clips, "
             f"{clips.get(IRMAS_TEST_SPLIT, 0):,} test excerpts")
    command = f"python -m helpers.report --run-dir {run_dir} --write README.md"
    header = (f"Generated by `{command}` from the run folder `{run_dir}` (data: **{source}**, "
              f"instruments: {', '.join(runs.instruments(run))}; {sizes}), measured on "
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


def replace_block(text: str, block: str, name: str = "README.md") -> str:
    """`text` with everything between the results markers replaced by `block`."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{name} has no {START} … {END} block to replace; add the two markers "
                         "where the results belong")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the README results tables.")
    parser.add_argument("--run-dir", required=True, type=Path, help="e.g. runs/demo")
    parser.add_argument("--write", type=Path, metavar="README",
                        help="replace the results block in this file instead of printing")
    args = parser.parse_args(argv)
    try:
        block = results_markdown(args.run_dir)
        if args.write:
            text = replace_block(args.write.read_text(), block, str(args.write))
            atomic_write(args.write, lambda tmp: tmp.write_text(text))
            print(f"updated the results block of {args.write} from {args.run_dir}")
        else:
            print(block)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
