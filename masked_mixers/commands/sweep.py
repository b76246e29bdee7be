r"""Train many ordinary `train` runs from one base config over a grid or list of overrides; gather the table.

Examples:
  masked-mixers sweep configs/scaling-cpu.yaml --output-dir runs/scaling-cpu
  masked-mixers sweep configs/scaling-cpu.yaml --dry-run          # list the points, train nothing
  masked-mixers sweep configs/scaling-cpu.yaml --set engine.workers=2 --set base.train.batch_size=8
  masked-mixers sweep configs/scaling-gpu.yaml --set engine.name=submitit --set engine.cluster=slurm \
      --set 'engine.parameters={timeout_min: 240, gpus_per_node: 1, slurm_partition: gpu}'

The config names `base` (a train config), `grid` (dotted key -> list of values; a key without a dot
bundles keys that move together) and/or `points`, and optionally `name`, `engine`,
`select_learning_rate` and `analysis: scaling` (docs/sweeps.md). Each point is an ordinary run folder
SWEEP_DIR/points/NAME; each finished or failed point appends a row to SWEEP_DIR/results.jsonl.
Rerunning the same command resumes: finished points are skipped, a point killed mid-way resumes from
its newest checkpoint, failed points run again. A failing point is recorded and the others go on;
the command then exits 1 naming how many failed. With `analysis: scaling` the frontier report is
written into SWEEP_DIR at the end (`masked-mixers scaling SWEEP_DIR` writes it from the table at any
time).
"""

from __future__ import annotations

import argparse
import json

from ..core.options import add_no_progress, add_output, add_overrides, hide_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="sweep config YAML (base, grid and/or points, engine, ...)")
    add_output(parser, folder=True, help="the sweep folder (default: output_dir of the config)")
    add_overrides(
        parser,
        help="override a sweep key (engine.workers=2) or, prefixed with base., a key of every point's run config "
        "(base.train.batch_size=8)",
    )
    parser.add_argument("--data", help="training corpus of every point (replaces base data.source)")
    parser.add_argument("--eval-data", help="held-out corpus of every point (replaces base data.eval_source)")
    parser.add_argument("--dry-run", action="store_true", help="list the points and their folders; train nothing")
    add_no_progress(parser)


def _split(args: argparse.Namespace) -> tuple[list[str], dict]:
    """(--set overrides of the sweep config, {dotted key: value} for every point's base config)."""
    from ..core.configfile import parse_override

    sweep, base = [], {}
    for text in args.overrides:
        if text.strip().startswith("base."):
            keys, value = parse_override(text.strip()[len("base.") :])
            base[".".join(keys)] = value
        else:
            sweep.append(text)
    if args.data:
        base["data.source"] = args.data
    if args.eval_data:
        base["data.eval_source"] = args.eval_data
    return sweep, base


def run(args: argparse.Namespace) -> int:
    hide_progress(args)
    from ..sweep.config import load_sweep_config
    from ..sweep.runner import Plan, run_sweep

    sweep_overrides, base_overrides = _split(args)
    config = load_sweep_config(args.config, sweep_overrides)
    if args.output_dir:
        config.output_dir = args.output_dir
    if args.dry_run:
        return _dry_run(Plan(config, args.config, base_overrides))
    outcome = run_sweep(config, args.config, base_overrides, progress=not args.no_progress)
    if config.analysis == "scaling":
        from ..scaling import analyse, read_results, write_report

        write_report(outcome.sweep_dir, analyse(read_results(outcome.sweep_dir / "results.jsonl")))
    print(
        f"{outcome.points} points: {outcome.ran} run now, {outcome.skipped} already finished, "
        f"{outcome.failed} failed -> {outcome.sweep_dir / 'results.jsonl'}"
    )
    if outcome.failed:
        print(f"masked-mixers sweep: {outcome.failed} point(s) failed; their rows and logs say why", flush=True)
        return 1
    return 0


def _dry_run(plan) -> int:
    selection = plan.config.select_learning_rate
    if selection:
        for sets in plan.sizes().values():
            for point in plan.rate_points(sets):
                print(f"rate  {point.name}")
        print(f"then {len(plan.sets)} points, each at its size's best rate of {selection.values}:")
    for overrides in plan.sets:
        print(f"point {json.dumps(overrides) if selection else plan.point(overrides).name}")
    return 0
