"""Run the requested findings at one scale and keep the scorecard current after each.

Each finding's result is saved as OUTPUT_DIR/<id>/finding.json with the scale and data it was
measured on; running `reproduce` again into the same folder reuses a finding whose scale and data
are unchanged (and every comparison already trained), so an interrupted run resumes. A finding
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
    """What a saved finding was measured on: reused only if this is unchanged."""
    return dict(scale=dataclasses.asdict(ctx.scale), data=ctx.data_source, eval_data=ctx.eval_source)


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
    entry.update(seconds=time.perf_counter() - start, cpu_seconds=cpu_seconds() - cpu, identity=_identity(ctx))
    return entry


def _saved(path: Path, ctx: Context) -> dict | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return entry if entry.get("identity") == json.loads(json.dumps(_identity(ctx))) and not entry.get("error") else None


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
    )
    make_dir(
        out
    )  # a folder that passes the checks but cannot be made (/proc/x as root) is one line here, before any work
    start, cpu = time.perf_counter(), cpu_seconds()
    card = dict(
        command=request.command,
        scale=dataclasses.asdict(scale),
        environment=environment("fp32" if scale.name != "paper" else "auto"),
        findings=[],
    )
    selected = request.selected()
    for i, finding in enumerate(selected, 1):
        path = out / finding.id / "finding.json"
        entry = _saved(path, ctx)
        print(
            f"[reproduce {i}/{len(selected)}] {finding.id} {finding.title}: {'reusing ' + str(path) if entry else 'running'}",
            flush=True,
        )
        if entry is None:
            entry = _measure(finding, ctx)
            make_dir(path.parent)
            atomic_write_json(path, entry)
        print(f"[reproduce] {finding.id}: {entry['verdict']} ({entry['reason']})", flush=True)
        card["findings"] = sorted(card["findings"] + [entry], key=lambda e: e["id"])
        card.update(seconds=time.perf_counter() - start, cpu_seconds=cpu_seconds() - cpu)
        write(card, out)
    return card


__all__ = ["ReproduceRequest", "cpu_seconds", "run_reproduce"]
