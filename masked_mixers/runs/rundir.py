"""The output folder of a training run, written down once: what is in it and how to read it back.

`masked-mixers train` (training.py) fills OUTPUT_DIR with:

  config.json, model.safetensors   the model, via save_pretrained (loadable with the Auto classes)
  tokenizer.json, tokenizer_config.json, ...
                                   the tokenizer the run trained with, padding side included
  run.yaml                         the run config (RUN_CONFIG), written before training starts
  metrics.jsonl                    one JSON object per log/eval event (METRICS), appended as training
                                   goes, so a kill can leave its last line torn
  train_summary.json               what the finished run measured (SUMMARY), written at the end
  checkpoint-N/                    Trainer checkpoints (CHECKPOINT_PREFIX), for resume
  .checkpoint-staging/             a checkpoint or the final model being written (STAGING_DIR),
                                   renamed into place once complete (trainer.py)
  .lock                            held (flock) by the `train` writing the folder (LOCK), so a
                                   second `train` on the same folder stops with one line

Everything that reads a run folder (eval, generate, the probes, retrieval, compare) goes through
`load_run` and `read_metrics` here, so a change of layout or of loading policy happens in one place.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import UserError, reason
from ..core.files import make_dir
from . import manifest

MODEL_CONFIG = "config.json"
RUN_CONFIG = "run.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "train_summary.json"
CHECKPOINT_PREFIX = "checkpoint"  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR: checkpoint-<step>
STAGING_DIR = ".checkpoint-staging"
LOCK = ".lock"
WEIGHTS_SUFFIXES = (".safetensors", ".bin")


@contextmanager
def locked(run_dir: str | os.PathLike, enabled: bool = True) -> Iterator[Path]:
    """Hold the run folder's lock (created with the folder) while a `train` writes it.

    An advisory flock, released by the kernel when the process dies, so a killed run never leaves
    a stale lock. Under torchrun only process 0 takes it (`enabled`): the processes of one run
    share the folder, two runs must not (metrics would interleave, staging folders collide).
    """
    path = make_dir(run_dir)
    if not enabled:
        yield path
        return
    manifest.record(path, LOCK)  # recorded before it is written (claim_run checked the folder first)
    try:
        handle = open(path / LOCK, "a+", encoding="utf-8")
    except OSError as err:
        raise UserError(f"{path}: cannot write ({err.strerror or err})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise UserError(
                f"{path}: another `train` (pid {holder}) is writing this output directory; "
                "wait for it or choose another train.output_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        manifest.record(path, RUN_CONFIG, METRICS, SUMMARY, STAGING_DIR, "runs")  # runs/: TensorBoard's logs
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds a saved model (a config.json beside the weights)."""
    return (Path(path) / MODEL_CONFIG).is_file()


def _check_weight_files(path: Path) -> None:
    """Every weights file must be readable as what its name says, checked cheaply before loading.

    A truncated or empty safetensors file fails in safetensors' Rust reader with an exception type
    of its own; a folder with no weights at all would load as a randomly initialised model.
    """
    from safetensors import safe_open

    weights = [p for p in path.iterdir() if p.suffix in WEIGHTS_SUFFIXES]
    if not weights:
        raise UserError(f"{path}: no model weights (model.safetensors); the run did not finish saving")
    for file in weights:
        if file.suffix != ".safetensors":
            continue
        try:
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()
        except Exception as err:  # safetensors_rust.SafetensorError and OS errors: a damaged file
            raise UserError(f"{file}: damaged weights file ({reason(err)})") from None


def load_model_config(model_dir: str | os.PathLike, trust_remote_code: bool = False):
    """The transformers config of a saved model folder; a damaged or foreign one is one line."""
    from transformers import AutoConfig

    from .. import models  # noqa: F401  registers this package's model types with the Auto classes

    path = Path(model_dir)
    if not is_model_dir(path):
        raise UserError(f"{path}: not a model directory (no {MODEL_CONFIG}); pass the output_dir of a training run")
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as err:  # not JSON, unknown model_type, custom code refused: the folder is at fault
        raise UserError(
            f"{path / MODEL_CONFIG}: cannot read the model config ({type(err).__name__}: {reason(err)})"
        ) from None


def load_run(model_dir: str | os.PathLike, trust_remote_code: bool = False):
    """(model in eval mode, tokenizer) from a directory written by `masked-mixers train`.

    The model class follows the family's task (models.family_of): AutoModelForCausalLM for
    language models, AutoModel for the autoencoders. No code from the directory is run unless
    the user passed --trust-remote-code: a model folder is data. Weights must match the config
    exactly (no missing, unexpected or reshaped tensor), else the model would run partly random.
    The tokenizer keeps the padding side it was saved with, which is the side the model was
    trained with (generation lays prompts out on it). Anything that is not a loadable model
    folder is a one-line UserError naming it.
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from ..models import AUTOENCODE, family_of
    from ..objectives import restore as restore_objective

    path = Path(model_dir)
    config = load_model_config(path, trust_remote_code)
    _check_weight_files(path)
    try:
        family = family_of(config)
        model_class = AutoModel if family.task == AUTOENCODE else AutoModelForCausalLM
        model, info = model_class.from_pretrained(path, trust_remote_code=trust_remote_code, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        restore_objective(model, path)  # MTP heads / completion mask vector, which from_pretrained leaves out
    except UserError:
        raise
    except Exception as err:  # whatever the libraries fail on while parsing the folder's files
        raise UserError(
            f"{path}: cannot load the model or its tokenizer ({type(err).__name__}: {reason(err)})"
        ) from None
    _check_vocabulary(path, model, tokenizer, exact=_trained_vocabulary(path))
    restored = model.state_dict().keys()
    info["unexpected_keys"] = [
        k for k in info.get("unexpected_keys", ()) if k not in restored
    ]  # the objective's own weights
    wrong = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if wrong:
        what = "; ".join(
            f"{k.replace('_', ' ')}: {', '.join(map(str, sorted(v, key=str)[:3]))}{' ...' if len(v) > 3 else ''}"
            for k, v in wrong.items()
        )
        raise UserError(f"{path}: the weights do not match {MODEL_CONFIG} ({what})")
    return model.eval(), tokenizer


def _trained_vocabulary(path: Path) -> bool:
    """Whether the run in `path` sized its model's vocabulary from its tokenizer (run.yaml: model.vocab_size
    null and no train.init_from); such a model's vocabulary equals its tokenizer's size exactly."""
    from ..core.configfile import load_yaml

    try:
        run = load_yaml(path / RUN_CONFIG) if (path / RUN_CONFIG).is_file() else None
    except (UserError, OSError):  # an unreadable run.yaml only loses this stricter check; the model still loads
        return False
    if (
        not isinstance(run, dict)
        or not isinstance(run.get("model"), dict)
        or not isinstance(run.get("train", {}), dict)
    ):
        return False
    return run["model"].get("vocab_size") is None and not run.get("train", {}).get("init_from")


def _check_vocabulary(where: str | os.PathLike, model, tokenizer, exact: bool = False) -> None:
    """A tokenizer beside a model must be the one it was trained with: no token id past the model's vocabulary
    (a padded embedding may be larger), and the same size where the run took its vocabulary from it (`exact`)."""
    tokens, vocab = len(tokenizer), model.get_input_embeddings().num_embeddings
    if tokens > vocab or (exact and tokens != vocab):
        raise UserError(
            f"{where}: the tokenizer has {tokens} tokens but the model's vocabulary is {vocab}; "
            "the tokenizer is not the one this model was trained with"
        )


# Keys a resumed run may change: bookkeeping, budgets and where things live, never what is computed.
# train.max_flops is not one: it sets the step count the learning-rate schedule decays over, like max_steps.
RESUMABLE_KEYS = frozenset(
    {
        "train.output_dir",
        "train.max_seconds",
        "train.max_compute_seconds",
        "train.eval_steps",
        "train.max_eval_batches",
        "train.eval_batch_size",
        "train.save_steps",
        "train.save_total_limit",
        "train.logging_steps",
        "train.num_workers",
        "train.report_to",
        "data.cache_dir",
        "data.num_proc",
    }
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def changed_keys(run_dir: str | os.PathLike, run) -> list[str]:
    """Keys of `run` that differ from the run.yaml a previous run left in `run_dir` (resumable keys excepted).

    A resume that silently used the old learning rate, or failed on a size mismatch after
    overwriting run.yaml, would lose the record of what the checkpoints were trained with.
    """
    from ..core.configfile import load_yaml, to_dict

    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        return []
    old, new = _flatten(load_yaml(path)), _flatten(to_dict(run))
    return sorted(k for k in old.keys() | new.keys() if k not in RESUMABLE_KEYS and old.get(k) != new.get(k))


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """train_summary.json of a finished run, or None (absent, or torn by a kill: then not finished)."""
    path = Path(run_dir) / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and is_model_dir(run_dir) else None


def claim_run(run_dir: str | os.PathLike, option: str = "train.output_dir") -> None:
    """Refuse, before any work, a run folder that holds anything this package did not write (manifest.py).

    Refused with one line: a folder with entries of the user's (a project, the user's own config,
    a downloaded model), a checkpoint or a folder inside another run. `locked` then records the
    names a run writes from the start; checkpoints and the final model's files are recorded as
    they are saved (trainer.py).
    """
    manifest.check_destination(run_dir, manifest.RUN, option)


def clear_run(run_dir: str | os.PathLike) -> None:
    """Remove what an earlier run left (checkpoints, metrics, summary, model) before --no-resume starts over.

    Only entries the folder's manifest lists go (manifest.py; an old run folder's exact names);
    the lock and anything this package did not write stay. Without this, a later plain run
    would resume the old run's checkpoints.
    """
    path = Path(run_dir)
    if not path.is_dir():
        return
    removed = [name for name in sorted(manifest.owned(path)) if name != LOCK and manifest.remove(path, name)]
    manifest.forget(
        path, *(name for name in removed if name not in (RUN_CONFIG, METRICS, SUMMARY, STAGING_DIR, "runs"))
    )


def load_pretrained(name: str, key: str = "train.init_from"):
    """(model, tokenizer) from a run folder (`load_run`) or a Hugging Face hub id, for further training.

    A hub id is loaded with the same policy as a folder: this package's Auto registration and
    trust_remote_code=False. Anything that cannot be loaded is one line naming `key`.
    """
    if Path(name).expanduser().exists():
        path = Path(name).expanduser()
        try:
            return load_run(path)
        except UserError as err:
            raise UserError(f"{key}: {err}") from None
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    from ..models import AUTOENCODE, family_of

    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=False)
        model_class = AutoModel if family_of(config).task == AUTOENCODE else AutoModelForCausalLM
        model = model_class.from_pretrained(name, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise UserError(f"{key}: {name!r} is neither a run folder nor a loadable hub model ({reason(err)})") from None
    _check_vocabulary(f"{key}: {name}", model, tokenizer)
    return model.eval(), tokenizer


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The events of a metrics.jsonl (or of a run folder's), oldest first; [] when there is none.

    A run killed mid-write leaves its last line torn: that line is dropped. Any other line that
    is not a JSON object means the file was damaged some other way, which is a one-line UserError
    naming the line rather than a silently shorter history.
    """
    path = Path(path)
    if path.is_dir():
        path = metrics_path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif number < len(lines):
            raise UserError(f"{path}:{number}: not a JSON object; the metrics file is damaged")
    return records


__all__ = [
    "CHECKPOINT_PREFIX",
    "RESUMABLE_KEYS",
    "changed_keys",
    "claim_run",
    "clear_run",
    "read_summary",
    "LOCK",
    "load_model_config",
    "locked",
    "METRICS",
    "MODEL_CONFIG",
    "RUN_CONFIG",
    "STAGING_DIR",
    "SUMMARY",
    "is_model_dir",
    "load_pretrained",
    "load_run",
    "metrics_path",
    "read_metrics",
]
