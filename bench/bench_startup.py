"""Benchmark: start-up time of ``reconciler`` commands vs. the interpreter alone.

Run from the repository root::

    python bench/bench_startup.py                  # 15 repetitions
    python bench/bench_startup.py --repeat 31
    python bench/bench_startup.py --root ../other  # also time another checkout, same run

Each repetition runs, in fresh processes and in turn (so that load from other programs on a
shared machine falls on all of them alike):

* ``python -c pass``: the floor, an interpreter that starts and exits;
* ``python -m reconciler --version`` (targets: at most 0.15 s);
* ``python -m reconciler --help``;
* ``python -m reconciler validate specs/``: the example specs and their datasets (target: at
  most 0.4 s), after one untimed run that fills the dataset cache.

It prints the median wall time of each, its excess over the floor, and the median CPU time
(user + system) of the process, which other load on the machine disturbs less than the wall
time. ``--root`` adds another
checkout (its commands run with that checkout first on ``PYTHONPATH``, in its own directory),
to compare two versions in the same run.

Then, in this process, it times reading 2,000 job documents with positions
(``reconciler.spec.yamlpos.load_yaml_text``) with libyaml's parser and with the pure-Python
fallback (median CPU time).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS: dict[str, list[str]] = {
    "--version": ["-m", "reconciler", "--version"],
    "--help": ["-m", "reconciler", "--help"],
    "validate specs/": ["-m", "reconciler", "validate", "specs/"],
}

JOB = """\
---
kind: FineTuningJob
name: job-{i}
model: open-mistral-7b
suffix: s{i}
training_files:
  - dataset: ds-{i}
    weight: 1.0
validation_files: [ds-{i}]
hyperparameters:
  training_steps: 100
  learning_rate: 1e-4
  weight_decay: 0.1
integrations: [wandb]
start: true
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(args: list[str], root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh ``python ARGS`` in ``root``; a failure stops the run."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "120"}
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], cwd=root, env=env, stdout=subprocess.DEVNULL, check=False
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"'python {' '.join(args)}' in {root} exited {done.returncode}")
    return took, _children_cpu() - cpu


def yaml_figures(documents: int, repeat: int) -> dict[str, float]:
    """Median CPU seconds to read ``documents`` job documents, per available loader."""
    sys.path.insert(0, str(ROOT))
    from reconciler.spec import yamlpos

    text = "".join(JOB.format(i=i) for i in range(documents))
    loaders: dict[str, type[yamlpos.PurePositionLoader | yamlpos.CPositionLoader]] = {
        "pure Python": yamlpos.PurePositionLoader
    }
    if yamlpos.LIBYAML:
        loaders["libyaml"] = yamlpos.CPositionLoader
    figures = {}
    for name, loader in loaders.items():
        yamlpos.PositionLoader = loader
        times = []
        for _ in range(repeat):
            started = time.process_time()
            docs, problems = yamlpos.load_yaml_text(text, "jobs.yaml")
            times.append(time.process_time() - started)
            assert len(docs) == documents and not problems
        figures[name] = statistics.median(times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="repetitions (median kept)")
    parser.add_argument(
        "--root", type=Path, action="append", default=[], help="another checkout to time too"
    )
    parser.add_argument("--documents", type=int, default=2000, help="YAML documents to read")
    args = parser.parse_args()
    roots = [ROOT, *(r.resolve() for r in args.root)]

    for root in roots:  # untimed: fills each checkout's dataset cache and the page cache
        run_once(COMMANDS["validate specs/"], root)
    floor: list[tuple[float, float]] = []
    times: dict[tuple[Path, str], list[tuple[float, float]]] = {
        (r, c): [] for r in roots for c in COMMANDS
    }
    for _ in range(args.repeat):
        floor.append(run_once(["-c", "pass"], ROOT))
        for name, command in COMMANDS.items():
            for root in roots:
                times[(root, name)].append(run_once(command, root))

    base = statistics.median(wall for wall, _ in floor)
    base_cpu = statistics.median(cpu for _, cpu in floor)
    print(f"python -c pass: {base:.3f} s wall, {base_cpu:.3f} s CPU (medians of {args.repeat})")
    for root in roots:
        label = "this checkout" if root == ROOT else str(root)
        print(f"\n{label}:")
        for name in COMMANDS:
            runs = times[(root, name)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(
                f"  reconciler {name:<16} {wall:.3f} s wall (+{wall - base:.3f} s over "
                f"python -c pass), {cpu:.3f} s CPU"
            )

    figures = yaml_figures(args.documents, max(3, args.repeat // 3))
    print(f"\nreading {args.documents} job documents with positions (median CPU time):")
    for name, seconds in figures.items():
        print(f"  {name:<12} {seconds:.3f} s")


if __name__ == "__main__":
    main()
