"""One sweep point, as a worker runs it: the ordinary `train` entry point on the point's run config, and
the results.jsonl row it leaves (the interface with masked_mixers.scaling, docs/sweeps.md).

`run_point` never raises: a point that fails (bad config value, non-finite weights, any exception) is
a row with status "failed" and the error's first line, its traceback in the point's log, so one
failing point never stops the others. Everything the point prints (the Trainer's log lines,
warnings) goes to its log file, not over the sweep's progress bar.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from ..core.errors import UserError, reason
from .config import Point

ROW_KEYS = (
    "point",
    "status",
    "error",
    "overrides",
    "family",
    "d_model",
    "n_layers",
    "seq_len",
    "learning_rate",
    "budget_flops",
    "flops",
    "params",
    "non_embedding_params",
    "steps",
    "tokens",
    "eval_loss",
    "train_loss",
    "cpu_seconds",
    "wall_seconds",
    "revision",
)


def planned_row(point: Point, revision: str | None) -> dict:
    """The row's fields the config decides; the measured ones are null until the point has run."""
    model, train = point.run["model"], point.run["train"]
    row = dict.fromkeys(ROW_KEYS)
    row.update(
        point=point.name,
        overrides=point.overrides,
        family=model["family"],
        d_model=model["hidden_size"],
        n_layers=model["num_hidden_layers"],
        seq_len=model["seq_len"],
        learning_rate=train["learning_rate"],
        budget_flops=train["max_flops"],
        revision=revision,
    )
    return row


def failed_row(point: Point, revision: str | None, error: str, wall_seconds: float | None = None) -> dict:
    return {**planned_row(point, revision), "status": "failed", "error": error, "wall_seconds": wall_seconds}


def run_point(point: Point, log_path: str, revision: str | None) -> dict:
    """Train `point` (resuming its folder), return its results row; runs in a worker process."""
    os.environ["TQDM_DISABLE"] = "1"  # the sweep draws the only bar (core/progress.py)
    start = time.perf_counter()
    with _output_to(Path(log_path)):
        try:
            row = _train(point, revision)
        except UserError as err:
            print(f"masked-mixers sweep: point {point.name} failed: {err}", file=sys.stderr)
            return failed_row(point, revision, str(err), time.perf_counter() - start)
        except Exception as err:  # any bug or library failure: recorded, the others go on
            traceback.print_exc()
            return failed_row(point, revision, f"{type(err).__name__}: {reason(err)}", time.perf_counter() - start)
    row["wall_seconds"] = time.perf_counter() - start
    return row


def _train(point: Point, revision: str | None) -> dict:
    from ..core.configfile import from_dict
    from ..runs.config import RunConfig
    from ..training.train import train

    run = from_dict(RunConfig, point.run, f"point {point.name}")
    result = train(run)  # resumes the point's folder; a finished one is read back
    return {
        **planned_row(point, revision),
        "status": "done",
        "flops": result.flops,
        "params": result.parameters.total,
        "non_embedding_params": result.parameters.non_embedding,
        "steps": result.steps,
        "tokens": result.tokens_seen,
        "eval_loss": result.eval_metrics.get("loss"),
        "train_loss": result.train_loss,
        "cpu_seconds": result.cpu_seconds,
    }


@contextmanager
def _output_to(log: Path):
    """Send this process's stdout and stderr (file descriptors included: C-level warnings) to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "a", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


__all__ = ["ROW_KEYS", "failed_row", "planned_row", "run_point"]
