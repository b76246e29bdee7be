"""Run the requested findings at one scale and keep the scorecard current after each.

Each finding's result is saved as OUTPUT_DIR/<id>/finding.json with its provenance: the package
version, the git revision, a sha256 of the package's code and of its resolved config (finding id,
scale, data). Running `reproduce` again into the same folder reuses a finding (and every comparison
already trained) only when the version and both hashes match, so an interrupted run resumes and a
code change re-runs; `reuse_stale` keeps a saved finding of other code and marks it stale. A finding
that fails with an unexpected error is recorded as failed (its traceback's last line in the
scorecard) and the others still run; the command then exits non-zero. Bad input stops at once.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..compare.report import environment
from ..core.devices import resolve_device
from ..core.errors import UserError
from ..core.files import atomic_write_json, check_output_dir, make_dir
from .context import HUB_SOURCE, Context
from .finding import Finding
from .findings import FINDINGS, RUN_ORDER
from .provenance import code_sha256, config_sha256, git_revision, package_version
from .scales import SCALES
from .scorecard import write
from .verdict import INCONCLUSIVE, overall


@dataclass
class ReproduceRequest:
    """What `reproduce` was asked for; field names are the command's options (commands/reproduce.py)."""

    findings: list[str] = field(default_factory=list)  # empty: all
    scale: str = "cpu"
    output_dir: str = "runs/reproduce"
    data: str | None = None
    eval_data: str | None = None
    device: str = "auto"
    progress: bool = True
    cache_dir: str | None = None  # prepared-data cache (None: DataConfig's default, ~/.cache/masked_mixers)
    reuse_stale: bool = False  # keep a saved finding measured by other code (marked stale) instead of re-running
    command: str = "masked-mixers reproduce"

    def selected(self) -> list[Finding]:
        """The requested findings in run order; an unknown name is one line listing the known ones."""
        wanted = [name.upper() for name in self.findings] or list(FINDINGS)
        for name in wanted:
            if name not in FINDINGS:
                raise UserError(f"FINDING: unknown finding {name!r} (choose from {', '.join(FINDINGS)})")
        return [FINDINGS[name] for name in RUN_ORDER if name in wanted]

    def validate(self) -> None:
        if self.scale not in SCALES:
            raise UserError(f"--scale: unknown scale {self.scale!r} (choose from {', '.join(SCALES)})")
        self.selected()
        from ..data.corpus import resolve_source  # a missing local corpus is one line before any folder is made

        for source in (self.data, self.eval_data):
            if source:
                resolve_source(source)
        resolve_device(self.device)  # `--device cudaa` fails here, not after an hour of training
        check_output_dir(self.output_dir)


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (tokenizer and data workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _identity(ctx: Context) -> dict:
    """What a saved finding was measured on (its resolved config, less the finding's id), as JSON reads it back."""
    identity = dict(scale=dataclasses.asdict(ctx.scale), data=ctx.data_source, eval_data=ctx.eval_source)
    return json.loads(json.dumps(identity))


def _provenance(finding: Finding, ctx: Context) -> dict:
    """What produced a finding: package version, git revision, code hash (every .py of the package), config hash."""
    config = dict(finding=finding.id, **_identity(ctx))
    return dict(
        version=package_version(),
        revision=git_revision(),
        code_sha256=code_sha256(),
        config_sha256=config_sha256(config),
    )


MATCHED = ("version", "code_sha256")  # the revision is recorded, not matched: a docs-only commit changes it


def _measure(finding: Finding, ctx: Context) -> dict:
    """Run one finding; an unexpected error becomes a failed entry instead of ending the run."""
    start, cpu = time.perf_counter(), cpu_seconds()
    entry = dict(
        id=finding.id,
        title=finding.title,
        claim=finding.claim,
        published=finding.published,
        protocol=finding.protocol,
        seeds=ctx.scale.seeds if finding.seeded else 1,
    )
    try:
        measured = finding.run(ctx)
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - recorded in the scorecard, the other findings still run
        traceback.print_exc()
        entry.update(
            verdict=INCONCLUSIVE,
            reason=f"failed: {type(err).__name__}: {err}",
            error=f"{type(err).__name__}: {err}",
            budget="-",
            checks=[],
            table=[],
            headline=None,
        )
    else:
        verdict, reason = overall(measured.checks)
        entry.update(
            verdict=verdict,
            reason=reason,
            budget=measured.budget,
            checks=[c.to_dict() for c in measured.checks],
            table=measured.table,
            headline=measured.headline,
            artifacts=measured.artifacts,
            notes=measured.notes,
        )
    entry.update(
        seconds=time.perf_counter() - start,
        cpu_seconds=cpu_seconds() - cpu,
        identity=_identity(ctx),
        provenance=_provenance(finding, ctx),
    )
    return entry


def _saved(path: Path, finding: Finding, ctx: Context) -> dict | None:
    """The saved finding if it was measured on this config by this code (or, with `ctx.reuse_stale`, by
    other code: then marked `stale` with what changed); None: run it."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(entry, dict) or entry.get("error"):
        return None
    now, then = _provenance(finding, ctx), entry.get("provenance") or {}
    same_config = then.get("config_sha256") == now["config_sha256"] if then else entry.get("identity") == _identity(ctx)
    if not same_config:
        return None
    changed = [key for key in MATCHED if then.get(key) != now[key]]
    entry.pop("stale", None)
    if not changed:
        return entry
    what = ", ".join(f"{key} {str(then.get(key))[:12]} -> {str(now[key])[:12]}" for key in changed)
    if not ctx.reuse_stale:
        print(f"[reproduce] {finding.id}: {path} was measured by other code ({what}): running again", flush=True)
        return None
    return dict(entry, stale=f"measured by other code than this run's ({what}); kept by --reuse-stale")


def run_reproduce(request: ReproduceRequest) -> dict:
    """Measure every requested finding, rewriting the scorecard after each; returns the scorecard."""
    request.validate()
    scale = SCALES[request.scale]
    out = Path(request.output_dir)
    ctx = Context(
        scale=scale,
        output_dir=out,
        data_source=request.data or HUB_SOURCE,
        eval_source=request.eval_data,
        device=request.device,
        progress=request.progress,
        cache_dir=request.cache_dir,
        code_sha256=code_sha256(),
        reuse_stale=request.reuse_stale,
    )
    make_dir(out)  # a folder that passes the checks but cannot be made (/proc/x as root) is one line here
    start, cpu = time.perf_counter(), cpu_seconds()
    card = dict(
        command=request.command,
        scale=dataclasses.asdict(scale),
        environment=environment("fp32" if scale.name != "paper" else "auto"),
        provenance=dict(version=package_version(), revision=git_revision(), code_sha256=code_sha256()),
        findings=[],
    )
    selected = request.selected()
    for i, finding in enumerate(selected, 1):
        path, here = out / finding.id / "finding.json", ctx.for_finding(finding.id)
        entry = _saved(path, finding, here)
        doing = ("reusing (stale) " if entry and entry.get("stale") else "reusing ") + str(path) if entry else "running"
        print(f"[reproduce {i}/{len(selected)}] {finding.id} {finding.title}: {doing}", flush=True)
        if entry is None:
            entry = _measure(finding, here)
            make_dir(path.parent)
            atomic_write_json(path, entry)
        print(f"[reproduce] {finding.id}: {entry['verdict']} ({entry['reason']})", flush=True)
        card["findings"] = sorted(card["findings"] + [entry], key=lambda e: e["id"])
        card.update(seconds=time.perf_counter() - start, cpu_seconds=cpu_seconds() - cpu)
        write(card, out)
    return card


__all__ = ["ReproduceRequest", "cpu_seconds", "run_reproduce"]
