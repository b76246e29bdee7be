"""Adding a family is one package plus one line: proved on a copy of the package.

The test copies `masked_mixers` into a temporary folder, adds a throwaway family package there
(`models/toy_llama/`: a Llama with a knob of its own) and one line to `FAMILY_PACKAGES`, and then,
in a child process that imports the copy, uses the new family through every place that reads
declarations: the run schema (its knob becomes a ModelSpec key, refused for other families), the
factory, the FLOP count, labels, the scorecard colour, the reproduce learning-rate group, the CLI
choices and a short real training run. Nothing else of the copy is edited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TRAIN, VALID

ROOT = Path(__file__).resolve().parents[1]

TOY_PACKAGE = {
    "__init__.py": '''
        """A throwaway family for tests/test_family_plugin.py: Llama whose MLP width is `toy_width` x d."""
        from .family import FAMILY

        FAMILIES = (FAMILY,)
        ''',
    "family.py": """
        from transformers import LlamaConfig, LlamaForCausalLM

        from ..family import DROPOUT, NUM_HEADS, Capabilities, Family, Knob, lm_head_flops
        from ..llama.family import heads, llama_block_flops


        class ToyConfig(LlamaConfig):
            model_type = "toy_llama"


        class ToyForCausalLM(LlamaForCausalLM):
            config_class = ToyConfig


        TOY_WIDTH = Knob("toy_width", int, 3, "MLP width as a multiple of hidden_size", minimum=1)


        def _config(spec, common):
            return ToyConfig(intermediate_size=spec.toy_width * spec.hidden_size, num_attention_heads=spec.num_heads,
                             num_key_value_heads=spec.num_heads, max_position_embeddings=spec.seq_len, **common)


        def _flops(spec, vocab, t):
            return spec.num_hidden_layers * llama_block_flops(spec, t) + lm_head_flops(spec, vocab)


        FAMILY = Family(
            name="toy_llama", description="a throwaway family", config_class=ToyConfig, model_class=ToyForCausalLM,
            build_config=_config, flops=_flops, knobs=(NUM_HEADS, DROPOUT, TOY_WIDTH),
            capabilities=Capabilities(cached_generation=True, switchable_attention=True),
            auto={"AutoModelForCausalLM": ToyForCausalLM}, size_multiple=heads,
            learning_rate_group="mixer", colour="C2", label=lambda spec: f"toy-w{spec.toy_width}",
        )
        """,
}

CHECKS = """
import dataclasses, sys
from masked_mixers.core.errors import UserError
from masked_mixers.models import FAMILIES
from masked_mixers.runs.config import ModelSpec, RunConfig, load_run_config
from masked_mixers.runs.factory import build_model, check_knobs
from masked_mixers.reproduce.scales import SCALES
from masked_mixers.reproduce.scorecard import _colour
from masked_mixers.bench.flops import forward_flops_per_token
from masked_mixers.training.train import train
from masked_mixers_entry import build_parser

assert "toy_llama" in FAMILIES, list(FAMILIES)
assert "toy_width" in {f.name for f in dataclasses.fields(ModelSpec)}
spec = ModelSpec(family="toy_llama", hidden_size=32, num_hidden_layers=2, seq_len=32, num_heads=4, toy_width=2)
model, params = build_model(spec, vocab_size=512)
assert model.config.intermediate_size == 64 and type(model).__name__ == "ToyForCausalLM"
assert spec.label == "toy-w2", spec.label
try:
    check_knobs(ModelSpec(family="mixer", toy_width=5))
    raise SystemExit("a mixer with toy_width was accepted")
except UserError as err:
    assert "toy_llama" in str(err), err
assert SCALES["cpu"].learning_rate("toy_llama") == SCALES["cpu"].learning_rate("mixer")
assert _colour("toy_llama") == "C2"
assert forward_flops_per_token(spec, 512).forward > 0
assert build_parser("bench").parse_args(["bench", "train", "--families", "toy_llama"]).families == ["toy_llama"]
run = load_run_config(sys.argv[1])
assert run.model.family == "toy_llama" and run.model.toy_width == 2
result = train(run)
assert result.steps == 3, result.steps
print("OK", params.total)
"""


def test_a_new_family_is_one_package_and_one_line(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "masked_mixers", copy / "masked_mixers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "masked_mixers_entry.py", copy)
    package = copy / "masked_mixers" / "models" / "toy_llama"
    package.mkdir()
    for name, text in TOY_PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    init = copy / "masked_mixers" / "models" / "__init__.py"
    text = init.read_text(encoding="utf-8")
    assert text.count('    "bidirectional",\n)') == 1
    init.write_text(
        text.replace('    "bidirectional",\n)', '    "bidirectional",\n    "toy_llama",\n)'), encoding="utf-8"
    )  # the one line

    config = tmp_path / "toy.yaml"
    config.write_text(
        textwrap.dedent(f"""
        model: {{family: toy_llama, hidden_size: 32, num_hidden_layers: 2, seq_len: 32, num_heads: 4, toy_width: 2}}
        data: {{source: "{TRAIN}", eval_source: "{VALID}", max_documents: 200, max_eval_documents: 20, vocab_size: 300,
                cache_dir: "{tmp_path / "cache"}"}}
        train: {{output_dir: "{tmp_path / "run"}", max_steps: 3, batch_size: 4, eval_steps: 0, save_steps: 0,
                 max_eval_batches: 1}}
        """),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(copy), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHECKS, str(config)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "OK" in done.stdout
    assert not (ROOT / "masked_mixers" / "models" / "toy_llama").exists()
