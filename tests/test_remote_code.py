"""Every family's saved folder loads where this package cannot be imported (models/remote_code.py).

Each family is built tiny, saved with `save_pretrained`, and loaded in a subprocess that blocks
`masked_mixers`, through every Auto class its `auto_map` names (transformers' own families through
their Auto classes, with no code): the outputs and greedy continuations must equal the package's.
"""

import json
import re

import pytest
import torch
import transformers
from conftest import run_without_package

from masked_mixers.models import FAMILIES
from masked_mixers.models.remote_code import auto_map, write_code
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

VOCAB, L = 40, 16
IDS = torch.arange(2 * 10).reshape(2, 10) % (VOCAB - 2) + 2  # (2, 10), no pad (0) or eos (1) tokens
NATIVE = ("AutoModel", "AutoModelForCausalLM")  # transformers' own families (llama, gpt2): no auto_map, no code

LOAD = """
import json, sys
import torch, transformers
ids = torch.load(sys.argv[1])
got = {}
for folder in sys.argv[3:]:
    config = json.load(open(f"{folder}/config.json"))
    for auto in sorted(config.get("auto_map", {"AutoModel": 0, "AutoModelForCausalLM": 0})):
        if auto == "AutoConfig":
            continue
        model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=True).eval()
        with torch.no_grad():
            out = {"first": model(input_ids=ids, attention_mask=torch.ones_like(ids))[0]}
            if auto == "AutoModelForCausalLM" and folder.endswith("+generates"):
                out["generated"] = model.generate(
                    ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False
                )
        out["module"] = type(model).__module__
        got[f"{folder}:{auto}"] = out
assert not any(m.startswith("masked_mixers") for m in sys.modules)
torch.save(got, sys.argv[2])
"""


def _save(name: str, root) -> str:
    """The family built tiny and saved; the folder's name says whether it generates (LOAD reads it)."""
    family = FAMILIES[name]
    torch.manual_seed(0)
    heads = {"num_heads": 2} if "num_heads" in family.knob_names else {}
    spec = ModelSpec(family=name, hidden_size=16, num_hidden_layers=2, seq_len=L, **heads)
    model, _ = build_model(spec, VOCAB, pad_token_id=0, eos_token_id=1)
    folder = root / (name + ("+generates" if family.capabilities.generates else ""))
    model.save_pretrained(folder)
    return str(folder)


def _expected(folder: str, auto: str, generates: bool) -> dict:
    """What the package's own classes give for the folder through `auto` (no code from the folder run)."""
    model = getattr(transformers, auto).from_pretrained(folder, trust_remote_code=False).eval()
    mask = torch.ones_like(IDS)
    with torch.no_grad():
        out = {"first": model(input_ids=IDS, attention_mask=mask)[0]}
        if generates:
            out["generated"] = model.generate(IDS, attention_mask=mask, max_new_tokens=4, do_sample=False)
    return out


def test_every_family_loads_and_runs_without_this_package(tmp_path):
    folders = {name: _save(name, tmp_path) for name in FAMILIES}
    torch.save(IDS, tmp_path / "ids.pt")
    run_without_package(LOAD, tmp_path / "ids.pt", tmp_path / "got.pt", *folders.values(), cwd=tmp_path, timeout=600)
    got = torch.load(tmp_path / "got.pt")
    for name, folder in folders.items():
        family = FAMILIES[name]
        autos = set(family.auto) if family.standalone else set(NATIVE)
        saved = json.loads((tmp_path / folder / "config.json").read_text()).get("auto_map")
        assert (set(saved) == {"AutoConfig", *autos}) if family.standalone else saved is None, name
        assert family.standalone or not family.auto, f"{name}: has code of its own but does not save it"
        for auto in autos:
            result = got[f"{folder}:{auto}"]
            assert result["module"].startswith("transformers_modules." if family.standalone else "transformers."), name
            generates = auto == "AutoModelForCausalLM" and family.capabilities.generates
            expected = _expected(folder, auto, generates)
            torch.testing.assert_close(result["first"], expected["first"], atol=0, rtol=0, msg=f"{name} {auto}")
            assert not generates or torch.equal(result["generated"], expected["generated"]), name


def test_shared_modules_are_saved_flat_under_names_that_do_not_collide(tmp_path):
    family = FAMILIES["linear_mixer"]  # its modeling.py and configuration.py build on the masked mixer's
    write_code([family.config_class, *family.auto.values()], tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"modeling.py", "configuration.py", "masked_mixer_modeling.py", "masked_mixer_configuration.py"} <= names
    assert "from .masked_mixer_modeling import" in (tmp_path / "modeling.py").read_text()
    parent_imports = re.compile(r"^\s*from\s+\.\.", re.MULTILINE)  # as transformers reads a file's imports
    assert not [n for n in names if parent_imports.search((tmp_path / n).read_text())]  # siblings only
    assert auto_map({"AutoConfig": family.config_class, **family.auto}) == {
        "AutoConfig": "configuration.LinearMixerConfig",
        "AutoModel": "modeling.LinearMixerModel",
        "AutoModelForCausalLM": "modeling.LinearMixerForCausalLM",
    }


def test_a_package_import_cannot_be_saved_flat(tmp_path, monkeypatch):
    (tmp_path / "toy" / "sub").mkdir(parents=True)
    (tmp_path / "toy" / "__init__.py").write_text("")
    (tmp_path / "toy" / "sub" / "__init__.py").write_text("X = 1\n")
    (tmp_path / "toy" / "mod.py").write_text("from .sub import X\n\n\nclass Toy:\n    x = X\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from toy.mod import Toy

    with pytest.raises(ImportError, match="toy.sub is a package"):
        write_code([Toy], tmp_path)
