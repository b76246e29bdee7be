"""Publish a training run as a Hugging Face model: its files, plus a model card.

A run folder (rundir.py) already is a Hugging Face model: weights, config.json with an `auto_map`,
the modeling code beside them (models/__init__.py registers standalone families for that) and the
tokenizer. `push` stages what a model repository holds (no checkpoints, no staging folders), adds
a README.md model card written from the run's own records (run.yaml, train_summary.json), and
uploads the staged folder with `huggingface_hub` (`create_repo` + `upload_folder`), or copies it to
a local folder when the target is a path (`file://...`, `/abs`, `./rel`, `~/...`), which is also
how it is tested here, with no hub reachable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import UserError, reason
from ..core.files import share_like_umask
from . import manifest
from .rundir import CHECKPOINT_PREFIX, LOCK, MODEL_CONFIG, RUN_CONFIG, STAGING_DIR, SUMMARY, is_model_dir

CARD = "README.md"
_NOT_PUBLISHED = (
    CHECKPOINT_PREFIX + "-*",
    STAGING_DIR,
    "runs",
    "*.tmp",
    LOCK,
    manifest.MANIFEST,
)  # Trainer checkpoints, TensorBoard logs, bookkeeping


def is_local_target(target: str) -> bool:
    """A path rather than a hub repo id: `file://...`, absolute, `./`/`../`-relative or `~`."""
    return target.startswith(("file://", "/", "./", "../", "~")) or target in (".", "..")


def _local_path(target: str) -> Path:
    return Path(target.removeprefix("file://")).expanduser()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: cannot read ({reason(err)})") from None


def _run_config(run_dir: Path):
    from .config import load_run_config

    return load_run_config(run_dir / RUN_CONFIG) if (run_dir / RUN_CONFIG).is_file() else None


def _metric_rows(metrics: dict) -> str:
    rows = [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in sorted(metrics.items())
    ]
    return "\n".join(["| metric | value |", "|---|---|", *rows]) if rows else "No held-out evaluation was recorded."


def _compute_line(summary: dict) -> str:
    """Training FLOPs (analytic, as `bench` counts them), CPU and GPU seconds, where the summary has them."""
    parts = [
        f"{summary['flops']:.3g} training FLOPs (analytic: 3 x forward matrix-multiply FLOPs)"
        if summary.get("flops") is not None
        else None,
        f"CPU time {summary['cpu_seconds']:.0f} s" if summary.get("cpu_seconds") is not None else None,
        f"GPU time {summary['gpu_seconds']:.0f} s" if summary.get("gpu_seconds") is not None else None,
    ]
    shown = [p for p in parts if p]
    return "- compute: " + ", ".join(shown) if shown else "- compute: unknown"


def model_card(run_dir: str | os.PathLike, repo_id: str) -> str:
    """README.md text for the run: metadata header, then family, size, data, training budget, eval numbers."""
    from huggingface_hub import ModelCardData

    run_dir = Path(run_dir)
    config, summary, run = _read_json(run_dir / MODEL_CONFIG), _read_json(run_dir / SUMMARY), _run_config(run_dir)
    family = run.model.family if run else config.get("model_type", "unknown")
    sources = [] if run is None else [run.data.source] if isinstance(run.data.source, str) else list(run.data.source)
    hub_datasets = [s for s in sources if not Path(s).suffix and "/" in s]  # hub ids, not local files
    data = _data_section(run, sources)
    meta = ModelCardData(
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["masked-mixers", family],
        datasets=hub_datasets or None,
    )
    params = summary.get("parameters", {})
    size = ", ".join(
        f"{key} {config[key]}"
        for key in (
            "hidden_size",
            "num_hidden_layers",
            "seq_len",
            "max_position_embeddings",
            "mixer_type",
            "vocab_size",
        )
        if key in config
    )
    t = run.train if run else None
    budget = [
        f"- steps: {summary.get('steps', 'unknown')} (stopped by {summary.get('stopped_by', 'unknown')})",
        f"- tokens seen: {summary.get('tokens_seen', 'unknown'):,}"
        if isinstance(summary.get("tokens_seen"), int)
        else "- tokens seen: unknown",
        f"- training time: {summary['train_seconds']:.0f} s"
        if "train_seconds" in summary
        else "- training time: unknown",
        _compute_line(summary),
    ]
    if t is not None:
        budget.append(
            f"- limits: max_steps {t.max_steps}, max_seconds {t.max_seconds}, max_compute_seconds "
            f"{t.max_compute_seconds}, max_flops {t.max_flops}; batch {t.batch_size} x accumulation "
            f"{t.gradient_accumulation_steps}; optimizer {t.optimizer}, learning rate {t.learning_rate}, "
            f"{t.lr_scheduler} schedule, "
            + (
                f"{t.warmup_steps} warmup steps"
                if t.warmup_ratio is None
                else f"warmup {t.warmup_ratio:g} of the steps"
            )
            + (f"; started from {t.init_from}" if t.init_from else "")
        )
    total = params.get("total")
    context = config.get("seq_len", config.get("max_position_embeddings", "unknown"))
    return f"""---
{meta.to_yaml()}
---

# {repo_id.removeprefix("file://")}

A **{family}** language model trained with the `masked-mixers` toolkit (masked mixers: Badger,
arXiv 2409.01482; Llama baselines from transformers).

## Model

- family: `{family}` (`{config.get("architectures", ["?"])[0]}`)
- size: {f"{total:,} parameters ({params.get('non_embedding', 0):,} non-embedding)" if total else "unknown"}; {size}
- context length L = {context} tokens (`max_position_embeddings`, and the tokenizer's `model_max_length`)

## Data

{data}

## Training budget

{chr(10).join(budget)}

## Evaluation (held-out)

{_metric_rows(summary.get("eval_metrics", {}))}

## Use

The model code is saved beside the weights, so this package need not be installed:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{repo_id.removeprefix("file://")}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{repo_id.removeprefix("file://")}", trust_remote_code=True)
```
"""


def _data_section(run, sources: list[str]) -> str:
    """The data section: corpus, tokenizer, padding side, examples of L tokens."""
    if run is None:
        return "Not recorded (no run.yaml in the run folder)."
    d = run.data
    return (
        f"- corpus: {', '.join(f'`{s}`' for s in sources)} (split `{d.split}`"
        + (f", at most {d.max_documents} documents" if d.max_documents else "")
        + ")\n"
        + f"- held out: {f'`{d.eval_source}`' if d.eval_source else f'{d.eval_fraction:.0%} of the corpus'}\n"
        + "- tokenizer: "
        + (f"`{d.tokenizer}`" if d.tokenizer else f"byte-level BPE trained on the corpus, {d.vocab_size} tokens")
        + f"; {'packed' if d.packing else f'{d.padding_side}-padded'} examples of {run.model.seq_len} tokens"
        + ("; lowercased" if d.lowercase else "")
    )


def _require_model(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not is_model_dir(run_dir):
        raise UserError(f"{run_dir}: not a model directory (no {MODEL_CONFIG}); pass the output_dir of a training run")
    return run_dir


def stage(run_dir: str | os.PathLike, repo_id: str, into: Path) -> Path:
    """Copy the run's publishable files into `into` and write the model card there."""
    run_dir = _require_model(run_dir)
    shutil.copytree(run_dir, into, ignore=shutil.ignore_patterns(*_NOT_PUBLISHED), dirs_exist_ok=True)
    (into / CARD).write_text(model_card(run_dir, repo_id), encoding="utf-8")
    return into


def push(run_dir: str | os.PathLike, target: str, private: bool = False, token: str | None = None) -> str:
    """Publish `run_dir` to `target` (a hub repo id or a local path); returns where it went."""
    run_dir = _require_model(run_dir)
    dest = (
        _local_destination(run_dir, _local_path(target)) if is_local_target(target) else None
    )  # refused before any work
    with tempfile.TemporaryDirectory(prefix="masked-mixers-push-") as tmp:
        staged = stage(run_dir, target, Path(tmp) / "repo")
        if dest is not None:
            return _copy_local(staged, dest)
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        api = HfApi(token=token)
        try:
            url = api.create_repo(target, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(
                repo_id=target, folder_path=staged, repo_type="model", commit_message="Upload masked-mixers run"
            )
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise UserError(f"push {target}: {reason(err)}") from None
        return str(url)


def _local_destination(run_dir: Path, dest: Path) -> Path:
    """Where a local push writes: `dest` when it is new, empty or an earlier push; else a new
    subfolder named after the run (like `cp -r`). Its own run folder, a folder inside it or inside
    any run, or a subfolder that holds something else is refused with one line."""
    if dest.exists() and not dest.is_dir():
        raise UserError(f"{dest}: exists and is not a folder; push to a new or empty folder")
    run, where = Path(os.path.realpath(run_dir)), Path(os.path.realpath(dest))
    if where == run or run in where.parents:
        raise UserError(f"{dest}: is the run folder {run_dir} itself or inside it; push to a folder outside the run")
    if dest.is_dir() and (manifest.kind(dest) == manifest.RUN or manifest.is_checkpoint(dest)):
        raise UserError(f"{dest}: is another run's folder; push to a new or empty folder")
    if dest.is_dir() and manifest.kind(dest) != manifest.PUSH and any(dest.iterdir()):
        dest = dest / run.name  # a folder of the user's: the model goes into a new subfolder of it
        if dest.exists() and manifest.kind(dest) != manifest.PUSH and (not dest.is_dir() or any(dest.iterdir())):
            raise UserError(
                f"{dest}: exists and was not written by `masked-mixers push`; push to a new or empty folder"
            )
    manifest.check_destination(dest, manifest.PUSH, "push destination")
    return dest


def _copy_local(staged: Path, dest: Path) -> str:
    """Replace `dest` (new, empty or an earlier push of ours) with the staged folder as a whole:
    a reader sees the old or the new model, never a mix. The folder records what it holds (manifest.py)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.incoming-"))
    shutil.copytree(staged, incoming, dirs_exist_ok=True)
    manifest.record(incoming, *os.listdir(staged), what=manifest.PUSH)
    share_like_umask(incoming)  # mkdtemp makes 0700, the staged weights may be 0600
    aside = Path(
        tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-")
    )  # a fresh name: nothing of the user's is in the way
    if dest.exists():
        os.replace(dest, aside / "old")  # dest holds only our earlier push (checked by _local_destination)
    os.replace(incoming, dest)
    shutil.rmtree(aside, ignore_errors=True)
    return str(dest)


__all__ = ["CARD", "is_local_target", "model_card", "push", "stage"]
