"""Self-contained model folders: a family's code saved flat beside its weights, with an `auto_map`.

transformers loads a model's code from its folder (`trust_remote_code=True`) as one flat package:
config.json's `auto_map` names `module.Class`, and a module may import only its siblings, with
`from .x import`. The families here share code across packages (`from ..masked_mixer.mixing import`),
which transformers' own `register_for_auto_class` cannot copy. So a model class that derives from
`SelfContained` writes its code itself when saved: the modules that define its family's config and
Auto classes and every module of this package they import relatively, each as one flat file whose
relative imports are rewritten to `from .x import` (a file whose name another package's file already
took is saved as `package_name.py`), and an `auto_map` for AutoConfig and every Auto class the family
declares (`AutoModel` included: the trunk that gives hidden states, for sentence-transformers and
feature-extraction pipelines).

`models/__init__.py` sets `_remote_code` (Auto class name -> class) on each standalone family's classes.
This module imports only the standard library and is itself saved with the code (the models derive
from `SelfContained`); a model class loaded from a folder has no `_remote_code`, and transformers'
own `register_for_auto_class` copies its (already flat) files when it is saved again.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

_RELATIVE_FROM = re.compile(r"from\s+\.+[\w.]*\s+import")


class SelfContained:
    """Mixin for a family's PreTrainedModel: `save_pretrained` also writes the code and the `auto_map`."""

    _remote_code: dict[str, type] | None = None  # set by models/__init__.py for standalone families

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs):
        classes = type(self)._remote_code
        if classes:
            self.config.auto_map = auto_map(classes)  # written into config.json by save_pretrained
        result = super().save_pretrained(save_directory, *args, **kwargs)
        if classes and kwargs.get("is_main_process", True):
            write_code(classes.values(), Path(save_directory))
        return result


def _relative_imports(module: str) -> list[tuple[ast.ImportFrom, str]]:
    """(statement, absolute module name) of each relative `from ... import` in `module`'s file."""
    source = Path(sys.modules[module].__file__).read_text(encoding="utf-8")
    package = module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if not node.module:
                raise ImportError(f"{module}: `from {'.' * node.level} import x` cannot be saved flat; name x's module")
            found.append((node, f"{base}.{node.module}"))
    return found


def _bundle(roots: list[str]) -> dict[str, str]:
    """module -> flat file stem, for `roots` and every module they import relatively (breadth first)."""
    names: dict[str, str] = {}
    queue = list(dict.fromkeys(roots))
    while queue:
        module = queue.pop(0)
        if module in names:
            continue
        file = Path(sys.modules[module].__file__)
        if file.name == "__init__.py":
            raise ImportError(f"{module} is a package: import its modules instead, so the code can be saved flat")
        stem = file.stem if file.stem not in names.values() else f"{file.parent.name}_{file.stem}"
        names[module] = stem
        queue.extend(target for _, target in _relative_imports(module))
    return names


def _flattened(module: str, names: dict[str, str]) -> str:
    """The module's source with each relative import pointing at its flat sibling."""
    lines = Path(sys.modules[module].__file__).read_text(encoding="utf-8").splitlines(keepends=True)
    for node, target in _relative_imports(module):
        line = node.lineno - 1
        lines[line] = _RELATIVE_FROM.sub(f"from .{names[target]} import", lines[line], count=1)
    return "".join(lines)


def auto_map(classes: dict[str, type]) -> dict[str, str]:
    """`auto_map` for config.json: Auto class name -> `flat_module.Class`."""
    names = _bundle([cls.__module__ for cls in classes.values()])
    return {auto: f"{names[cls.__module__]}.{cls.__name__}" for auto, cls in classes.items()}


def write_code(classes, folder: Path) -> None:
    """Write the flat modules that define `classes` (and what they import) into `folder`."""
    names = _bundle([cls.__module__ for cls in classes])
    for module, stem in names.items():
        (folder / f"{stem}.py").write_text(_flattened(module, names), encoding="utf-8")


__all__ = ["SelfContained", "auto_map", "write_code"]
