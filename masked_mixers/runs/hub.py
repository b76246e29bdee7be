"""Publish a training run as a self-contained Hugging Face model: its files, plus a model card.

A run folder (rundir.py) already is a Hugging Face model: weights, config.json with an `auto_map`,
the modeling code beside them (models/remote_code.py) and the tokenizer. `push` stages only what a
hub user loads (PUBLISHED: the model, its generation config, the tokenizer files and the code; not the
Trainer's checkpoints, its pickled training_args.bin, the lock, run.yaml or metrics), writes a README.md
model card (card.py), and uploads the staged folder with `huggingface_hub` (`create_repo` +
`upload_folder`), or copies it to a local folder when the target is a path (`file://...`, `/abs`,
`./rel`, `~/...`), which is also how it is tested here, with no hub reachable.

A run saved by an older version of this package may lack its family's code or the full `auto_map`
(AutoModel): the staged copy gets the package's code. A family whose code is not saved with it
(not `standalone`) is refused, so a published model never claims to load without this package
when it cannot.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import UserError, reason
from ..core.files import share_like_umask
from . import manifest
from .card import DEFAULT_LICENSE, folder_family, model_card
from .rundir import MODEL_CONFIG, is_model_dir

CARD = "README.md"
PUBLISHED = (
    MODEL_CONFIG,
    "generation_config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "*.py",  # the model code (models/remote_code.py)
)


def is_local_target(target: str) -> bool:
    """A path rather than a hub repo id: `file://...`, absolute, `./`/`../`-relative or `~`."""
    return target.startswith(("file://", "/", "./", "../", "~")) or target in (".", "..")


def _local_path(target: str) -> Path:
    return Path(target.removeprefix("file://")).expanduser()


def _require_model(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not is_model_dir(run_dir):
        raise UserError(f"{run_dir}: not a model directory (no {MODEL_CONFIG}); pass the output_dir of a training run")
    return run_dir


def _with_code(run_dir: Path, staged: Path) -> None:
    """Make sure the staged model carries its family's code and full `auto_map` (see the module docstring)."""
    from ..models.remote_code import auto_map, write_code

    config = json.loads((staged / MODEL_CONFIG).read_text(encoding="utf-8"))
    family = folder_family(config, run_dir / MODEL_CONFIG)
    if not family.auto:
        return  # transformers' own classes (llama, gpt2): no code to carry
    if not family.standalone:
        raise UserError(
            f"{run_dir}: family {family.name!r} does not save its code with the model, so the published "
            "model would need masked-mixers installed; push publishes only self-contained models"
        )
    classes = {"AutoConfig": family.config_class, **family.auto}
    if config.get("auto_map") != auto_map(classes):
        write_code(classes.values(), staged)
        config["auto_map"] = auto_map(classes)
        (staged / MODEL_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def stage(run_dir: str | os.PathLike, name: str, into: Path, license: str = DEFAULT_LICENSE) -> Path:
    """Copy the run's publishable files into `into`, with its code, and write the model card (titled `name`)."""
    run_dir = _require_model(run_dir)
    into.mkdir(parents=True, exist_ok=True)
    for entry in run_dir.iterdir():
        if entry.is_file() and any(fnmatch.fnmatch(entry.name, pattern) for pattern in PUBLISHED):
            shutil.copy2(entry, into / entry.name)
    _with_code(run_dir, into)
    (into / CARD).write_text(model_card(run_dir, name, license), encoding="utf-8")
    return into


def push(
    run_dir: str | os.PathLike,
    target: str,
    private: bool = False,
    token: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """Publish `run_dir` to `target` (a hub repo id or a local path); returns where it went.

    The card is titled by the repo id, or for a local target by the folder's name (no local path is published)."""
    run_dir = _require_model(run_dir)
    dest = (
        _local_destination(run_dir, _local_path(target)) if is_local_target(target) else None
    )  # refused before any work
    with tempfile.TemporaryDirectory(prefix="masked-mixers-push-") as tmp:
        staged = stage(run_dir, target if dest is None else dest.name, Path(tmp) / "repo", license)
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


__all__ = ["CARD", "PUBLISHED", "is_local_target", "push", "stage"]
