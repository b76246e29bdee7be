"""What every finding of `reproduce` shares: the scale, the data, and training through `compare`.

A finding never trains models by itself: it describes a comparison (models, budget, seed) and
`Context.compare` runs it through `masked_mixers.compare.run_compare`, the same path as the
`compare` command, into OUTPUT_DIR/<finding>/<name>/ with its own report.md, results.json and
compare.yaml (so any row of the scorecard can be re-run or inspected with the ordinary commands).
A comparison whose folder already holds results for the same config is reused, so an
interrupted `reproduce` picks up where it stopped, and F1 and F5 reuse the language models F4
trained instead of training their own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from ..compare.config import CompareConfig, TrainOverrides
from ..core.configfile import to_dict
from ..core.files import atomic_write_json, atomic_write_text
from ..runs.config import DataConfig, ModelSpec, TrainConfig
from ..runs.factory import spec_for
from .scales import Scale

HUB_SOURCE = "roneneldan/TinyStories"
CODE_FILE = "reproduce-code.json"  # beside a comparison's compare.yaml: the code hash that trained it


@dataclass
class Context:
    """The run's scale and data, where findings write, and the comparisons trained so far."""

    scale: Scale
    output_dir: Path
    data_source: str | list[str] = HUB_SOURCE
    eval_source: str | list[str] | None = None
    device: str = "auto"
    progress: bool = True
    cache_dir: str | None = None  # prepared-data cache (None: DataConfig's default)
    trained: dict[str, list[dict]] = field(default_factory=dict)  # comparison folder -> its rows
    finding: str | None = None  # the finding running (its sizes in `scale.sizes`); the runner sets it
    code_sha256: str | None = None  # a saved comparison is reused only if trained by this code (None: any)
    reuse_stale: bool = False  # reuse saved comparisons whatever code trained them

    @property
    def seeds(self) -> list[int]:
        """The seeds every comparison runs (the scale's count, at least 3 at every scale)."""
        return list(range(self.scale.seeds))

    def for_finding(self, finding: str) -> Context:
        """This context with `finding`'s sizes (it shares the comparisons trained so far)."""
        return replace(self, finding=finding)

    def size(self, family: str, setting: str | None = None) -> dict:
        """ModelSpec size fields of `family` in the running finding (and its named `setting`, Scale.sizes' "F3/x")."""
        s = self.scale
        sizes = dict(hidden_size=s.d_model, num_hidden_layers=s.layers, seq_len=s.seq_len, num_heads=s.heads)
        overrides = s.sizes.get(self.finding if setting is None else f"{self.finding}/{setting}", {})
        return {**sizes, **overrides.get("*", {}), **overrides.get(family, {})}

    def settings(self) -> list[str]:
        """The running finding's further published settings (Scale.sizes' "F3/<setting>" keys)."""
        return [key.split("/", 1)[1] for key in self.scale.sizes if key.startswith(f"{self.finding}/")]

    # --- what findings build from ---------------------------------------------------------------

    def data(self, packing: bool = True) -> DataConfig:
        """The one corpus of the run: lowercased TinyStories (the paper's), packed unless a task pads per document."""
        s = self.scale
        return DataConfig(
            source=self.data_source,
            eval_source=self.eval_source,
            split="train",
            eval_split="validation",
            lowercase=True,
            max_documents=s.max_documents,
            max_eval_documents=s.max_eval_documents,
            vocab_size=s.vocab_size,
            padding_side="right",
            packing=packing,
            **({"cache_dir": self.cache_dir} if self.cache_dir else {}),
        )

    def spec(self, family: str, setting: str | None = None, **changes) -> ModelSpec:
        """A model of the running finding's size (`size`); `changes` set any other field (name, layers, switches)."""
        # changes are not filtered: a knob the family lacks is refused later
        return replace(spec_for(family, **self.size(family, setting)), **changes)

    def train(self, steps: int, seed: int, learning_rate: float | None = None, **changes) -> TrainConfig:
        """The scale's optimisation settings for `steps` steps (5% warmup, no checkpoints). Evaluated halfway and
        at the end: a finding compares final held-out losses (F4 sets its own eval points for the gap's trend),
        and every evaluation costs `eval_batches` forward passes, a second or more per run at the cpu scale."""
        s = self.scale
        return TrainConfig(
            max_steps=steps,
            batch_size=s.batch_size,
            warmup_steps=max(1, steps // 20),
            eval_steps=max(1, steps // 2),
            max_eval_batches=s.eval_batches,
            save_steps=0,
            logging_steps=max(1, steps // 40),
            seed=seed,
            learning_rate=learning_rate or s.learning_rate("llama"),
            precision="auto" if s.name == "paper" else "fp32",
            **changes,
        )

    def per_family(self, specs: list[ModelSpec]) -> dict[str, TrainOverrides]:
        """Each family's own learning rate (the paper tunes one per family)."""
        return {spec.family: TrainOverrides(learning_rate=self.scale.learning_rate(spec.family)) for spec in specs}

    # --- training --------------------------------------------------------------------------------

    def compare(
        self,
        folder: str,
        models: list[ModelSpec],
        train: TrainConfig,
        packing: bool = True,
        per_family: dict[str, TrainOverrides] | None = None,
    ) -> list[dict]:
        """Train `models` on the same tokens through `run_compare` into OUTPUT_DIR/folder; returns its rows.

        per_family: the comparison's overrides (default: each family's learning rate of the scale).
        Reuses the folder's results when they were made by the same config.
        """
        from ..compare import run_compare
        from ..compare.runner import claim_output

        out = self.output_dir / folder
        per_family = self.per_family(models) if per_family is None else per_family
        config = CompareConfig(models=models, data=self.data(packing), train=train, per_family=per_family)
        config.train.output_dir = str(out)
        config.report.max_new_tokens = 24 if self.scale.name != "tiny" else 4
        wanted = to_dict(config)
        if folder in self.trained:
            return self.trained[folder]
        saved = out / "compare.yaml"
        if saved.is_file() and (out / "results.json").is_file() and _same(saved, wanted) and self._same_code(out):
            rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["models"]
            print(f"[reproduce] reusing {out} (same config)", flush=True)
        else:
            claim_output(out, saved.name)  # a folder of the user's is refused before compare.yaml is written
            atomic_write_text(saved, yaml.safe_dump(wanted, sort_keys=False))
            start = time.perf_counter()
            rows = run_compare(config, out, progress=self.progress).rows
            atomic_write_json(out / CODE_FILE, dict(code_sha256=self.code_sha256))
            print(f"[reproduce] {folder}: {len(rows)} models in {time.perf_counter() - start:.0f} s", flush=True)
        self.trained[folder] = rows
        return rows

    def _same_code(self, out: Path) -> bool:
        """Whether the comparison in `out` was trained by this code (CODE_FILE; always, with reuse_stale or no hash)."""
        try:
            saved = json.loads((out / CODE_FILE).read_text(encoding="utf-8"))["code_sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            saved = None
        return self.same_code(saved)

    def same_code(self, saved_sha256: str | None) -> bool:
        """Whether something saved with code hash `saved_sha256` may be reused (always with reuse_stale or no hash)."""
        return self.reuse_stale or self.code_sha256 is None or saved_sha256 == self.code_sha256

    def seeded(self, finding: str, models: list[ModelSpec], steps: int, packing: bool = True) -> list[dict[str, dict]]:
        """One comparison per seed of the scale, into OUTPUT_DIR/<finding>/seed-<i>: [{label: row}, ...]."""
        runs = [self.compare(f"{finding}/seed-{seed}", models, self.train(steps, seed), packing) for seed in self.seeds]
        return [{row["label"]: row for row in rows} for rows in runs]

    def reports(self, finding: str) -> list[str]:
        """The compare reports `seeded` wrote, relative to the output directory."""
        return [f"{finding}/seed-{seed}/report.md" for seed in self.seeds]


def per_seed(seeds: list[dict[str, dict]], sides, key: str = "eval_loss") -> dict[str, list]:
    """{side: [row[key] of each seed]}: the numbers a verdict compares."""
    return {side: [rows[side][key] for rows in seeds] for side in sides}


def _same(saved: Path, wanted: dict) -> bool:
    """Whether a compare.yaml written by an earlier run equals this config (so its results can be reused).

    The file is read through the config loader, so a setting added since it was written counts as
    its default: a new option (a retrieval setting, say) does not make every earlier run stale.
    """
    from ..compare.config import load_compare_config

    try:
        return json.loads(json.dumps(to_dict(load_compare_config(saved)))) == json.loads(json.dumps(wanted))
    except Exception:  # an unreadable leftover is simply not reused
        return False


__all__ = ["HUB_SOURCE", "Context", "per_seed"]
