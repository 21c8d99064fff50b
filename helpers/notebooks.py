"""Execute the numbered notebooks headless, in order, with papermill.

`make demo` and the notebook test both come through here, so what CI executes is what a user
gets. Each notebook receives only the parameters its `parameters` cell declares.
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

from helpers.core.layout import RunLayout

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
# A busy machine is slow, not broken: nbclient waits 4 s for output and 60 s for a kernel.
STARTUP_SECONDS = 600
IOPUB_SECONDS = 120


def notebook_paths(folder: str | Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks (`01_download.ipynb`, …) in order."""
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no numbered notebooks in {folder}")
    return paths


def run_all(
    run_dir: str | Path,
    params: dict,
    folder: str | Path = NOTEBOOK_DIR,
    *, only: list[str] | None = None,
    log: bool = False,
) -> list[Path]:
    """Execute every notebook (or those whose names start with one of `only`) into `run_dir`.

    Executed copies land in `run_dir/notebooks/`; a failing notebook raises papermill's error,
    which names the cell, and leaves its partly executed copy there to read.
    """
    import papermill as pm

    out_dir = RunLayout(run_dir).notebooks
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"run_dir": str(Path(run_dir).resolve()), **params}
    written = []
    for nb in notebook_paths(folder):
        if only and not nb.name.startswith(tuple(only)):
            continue
        declared = pm.inspect_notebook(str(nb))
        start = time.perf_counter()
        pm.execute_notebook(
            str(nb), str(out_dir / nb.name),
            parameters={k: v for k, v in params.items() if k in declared},
            progress_bar=False, log_output=log,
            start_timeout=STARTUP_SECONDS, iopub_timeout=IOPUB_SECONDS,
        )
        print(f"{nb.name}: {time.perf_counter() - start:.0f} s -> {out_dir / nb.name}", flush=True)
        written.append(out_dir / nb.name)
    return written


def parse_settings(items: list[str]) -> dict:
    """`["epochs={'mel': 2}", "source=demo"]` -> `{"epochs": {"mel": 2}, "source": "demo"}`:
    Python literals where they parse, else the text; folders made absolute."""
    params = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"{item!r}: expected NAME=VALUE, e.g. epochs=3")
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    for key in ("data_dir", "home"):
        if key in params:
            params[key] = str(Path(params[key]).resolve())
    return params


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Execute the notebooks in order (papermill).")
    parser.add_argument("--run-dir", required=True, help="folder for executed notebooks")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="notebook parameters, e.g. source=demo epochs=3")
    parser.add_argument("--only", nargs="*", help="run only notebooks starting with these")
    args = parser.parse_args(argv)
    try:
        params = parse_settings(args.set)
    except ValueError as err:
        parser.error(str(err))
    run_all(args.run_dir, params, only=args.only)


if __name__ == "__main__":
    main()
