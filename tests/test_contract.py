"""The contract every registered family keeps, tested for each one merely because it is declared.

Parametrized over `masked_mixers.models.FAMILIES`: a family added there is built from a
`ModelSpec` through `build_model` (setting only knobs it takes, `Family.takes`) and checked for

- causality by perturbation, unpadded and with left and right padding (batch 3, rows of
  different real lengths); what "causal" means is read from the capabilities and the task;
- an Auto save/load round trip compared on logits;
- batched generation equal to one-by-one generation (`capabilities.generates`), on both
  padding sides where positions are mixing rows (`capabilities.positions_are_rows`);
- cached generation equal to uncached (`capabilities.cached_generation`), also past seq_len
  where the family slides (`capabilities.slides_past_context`);
- its declared FLOPs (`Family.flops`) against torch's FlopCounterMode on one forward;
- the HF Trainer's eval_loss equal to `evaluation.evaluate`'s loss on the same rows;
- `context_length(config)` and `family_of(model)`.

Nothing here names a family: behaviour is read from the declaration. Sizes are tiny
(d 32, 2 layers, L 16, vocab 64, 4 heads) so the file runs in seconds.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import transformers
from conftest import TRAIN
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.flop_counter import FlopCounterMode
from transformers import PreTrainedTokenizerFast

from masked_mixers.generation import encode_prompts, generate_ids
from masked_mixers.models import AUTOENCODE, FAMILIES, context_length, family_of
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

VOCAB, D, LAYERS, L, HEADS = 64, 32, 2, 16, 4
NAMES = list(FAMILIES)
SIZES = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, seq_len=L, num_heads=HEADS)


pytestmark = pytest.mark.usefixtures("one_thread")


def spec_for(family, **knobs) -> ModelSpec:
    """A tiny spec of `family`, setting only the fields it takes (the factory refuses others)."""
    fields = {k: v for k, v in {**SIZES, **knobs}.items() if k in family.takes}
    assert set(knobs) <= set(family.takes), f"{family.name} does not take {set(knobs) - set(family.takes)}"
    return ModelSpec(family=family.name, **fields)


def build(family, seed: int = 0, **knobs):
    torch.manual_seed(seed)
    model, _ = build_model(spec_for(family, **knobs))
    return model.eval()


def families(predicate=lambda f: True, reason: str = ""):
    """pytest params over every family; those failing `predicate` are skipped with `reason`."""
    return [
        pytest.param(name, id=name)
        if predicate(f)
        else pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"{name}: {reason}"))
        for name, f in FAMILIES.items()
    ]


# ---------------------------------------------------------------------------------------------
# Causality by perturbation
# ---------------------------------------------------------------------------------------------

LENGTHS = (L, 11, 6)  # real tokens per row in the padded cases


def padded_batch(padding: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None, list[list[int]]]:
    """ids (3, L), attention mask (None unpadded), and per row the columns of its real tokens in order."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (3, L), generator=g)
    if padding == "none":
        return ids, None, [list(range(L))] * 3
    mask = torch.zeros(3, L, dtype=torch.long)
    columns = []
    for row, n in enumerate(LENGTHS):
        cols = list(range(L - n, L)) if padding == "left" else list(range(n))
        mask[row, cols] = 1
        columns.append(cols)
    return ids.masked_fill(mask == 0, 0), mask, columns


def per_position_outputs(model, family, ids, mask) -> torch.Tensor:
    """(b, t, ...) outputs that must be causal: logits of a language model; for an autoencoder the
    encoder's states (its decoder reads only the bottleneck, so its logits depend on every token
    by design; the encoder is the causal part and its last state is the bottleneck)."""
    with torch.no_grad():
        if family.task == AUTOENCODE:
            return model.encoder_states(model.embed_tokens(ids), mask)
        return model(input_ids=ids, attention_mask=mask).logits


def perturbed(ids: torch.Tensor, row: int, col: int) -> torch.Tensor:
    changed = ids.clone()
    changed[row, col] = 3 + (changed[row, col] - 3 + 1) % (VOCAB - 3)  # another real (non-special) token
    return changed


@pytest.mark.parametrize("padding", ["none", "left", "right"])
@pytest.mark.parametrize("name", NAMES)
def test_causal_by_perturbation(name, padding):
    """Changing real token j moves no output at an earlier real position, and (left padding) no pad.

    predicts_in_place families: the prediction of token j must not move (it must not see token j),
    while its neighbours' do (they read it from one side or the other).
    """
    family = FAMILIES[name]
    model = build(family)
    ids, mask, columns = padded_batch(padding)
    in_place = family.capabilities.predicts_in_place
    if in_place and padding == "left":
        # predicts_in_place models reverse each row's real tokens; with left padding that reversal is
        # ill-defined, and the documented behaviour is to refuse rather than predict from the wrong side
        with pytest.raises(ValueError, match="right padding"):
            per_position_outputs(model, family, ids, mask)
        return
    base = per_position_outputs(model, family, ids, mask)
    # rows never mix: changing one row's token leaves every other row exactly as it was
    out = per_position_outputs(model, family, perturbed(ids, 0, columns[0][len(columns[0]) // 2]), mask)
    assert torch.equal(out[1:], base[1:]), f"{name}/{padding}: changing row 0 moved another row of the batch"
    for pick in (lambda n: 0, lambda n: 1, lambda n: n // 2, lambda n: n - 1):  # first, second, middle, last real token
        changed = ids
        for row, cols in enumerate(
            columns
        ):  # one real token of every row at once (rows are independent, checked above)
            changed = perturbed(changed, row, cols[pick(len(cols))])
        out = per_position_outputs(model, family, changed, mask)
        for row, cols in enumerate(columns):
            k = pick(len(cols))
            j = cols[k]
            diff = (out[row] - base[row]).abs().flatten(1).amax(1)  # (t,): largest change per column
            if in_place:
                assert diff[j] == 0, (
                    f"{name}/{padding}: row {row}: the prediction of real position {k} depends on token {k} itself"
                )
                neighbours = [cols[m] for m in (k - 1, k + 1) if 0 <= m < len(cols)]
                assert all(diff[c] > 0 for c in neighbours), f"{name}/{padding}: token {k} reaches neither neighbour"
                continue
            moved = [cols.index(c) for c in cols[:k] if diff[c] != 0]
            assert not moved, (
                f"{name}/{padding}: row {row}: changing real position {k} moved earlier real positions {moved}"
            )
            if padding == "left":
                pads = [c for c in range(L) if c not in cols]
                leaked = [c for c in pads if diff[c] != 0]
                assert not leaked, (
                    f"{name}/left: row {row}: changing real position {k} moved the outputs at pad columns {leaked} "
                    f"(max change {diff[pads].max().item():.3g})"
                )
            assert diff[j] > 0, f"{name}/{padding}: changing token {k} did not move its own position (vacuous test)"


@pytest.mark.parametrize("name", families(lambda f: f.task == AUTOENCODE, "not an autoencoder"))
def test_autoencoder_bottleneck_of_a_prefix_is_the_encoder_state_there(name):
    """encode(prefix of k tokens) is the compressed encoder state at position k - 1 of the full text:
    the bottleneck of a prefix never depends on what follows it."""
    family = FAMILIES[name]
    model = build(family, compression_dim=8)
    ids, _, _ = padded_batch("none")
    with torch.no_grad():
        states = model.encoder_states(model.embed_tokens(ids), None)
        for k in (1, 5, L):
            torch.testing.assert_close(model.encode(ids[:, :k]), model.compress(states[:, k - 1]), atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Save / load through the declared Auto class
# ---------------------------------------------------------------------------------------------


def auto_class_name(family) -> str:
    """The Auto class that loads the family's model class (transformers' own registration for llama)."""
    names = [n for n, cls in family.auto.items() if cls is family.model_class]
    assert len(names) <= 1, f"{family.name}: model class registered under several Auto classes {names}"
    if names:
        return names[0]
    assert not family.auto, f"{family.name}: declares Auto classes {list(family.auto)} but none for its model class"
    return "AutoModelForCausalLM" if family.task != AUTOENCODE else "AutoModel"


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("name", NAMES)
def test_auto_save_load_round_trip_on_logits(name, tie, tmp_path):
    family = FAMILIES[name]
    model = build(family, tie_word_embeddings=tie)
    model.save_pretrained(tmp_path)
    auto = getattr(transformers, auto_class_name(family))
    loaded = auto.from_pretrained(tmp_path, trust_remote_code=False).eval()
    assert type(loaded) is family.model_class
    assert family_of(loaded) is family
    ids, mask, _ = padded_batch("right")
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask).logits,
            model(input_ids=ids, attention_mask=mask).logits,
            atol=0,
            rtol=0,
        )


@pytest.mark.parametrize("name", NAMES)
def test_other_declared_auto_classes_load_the_trunk(name, tmp_path):
    """Every other Auto class a family declares (AutoModel -> its trunk) loads the saved weights whole."""
    family = FAMILIES[name]
    others = {n: cls for n, cls in family.auto.items() if cls is not family.model_class}
    if not others:
        pytest.skip(f"{name} declares no Auto class besides its model's")
    model = build(family)
    model.save_pretrained(tmp_path)
    ids = padded_batch("none")[0]
    for auto_name, cls in others.items():
        loaded, info = getattr(transformers, auto_name).from_pretrained(
            tmp_path, trust_remote_code=False, output_loading_info=True
        )
        assert type(loaded) is cls, auto_name
        assert not info["missing_keys"], f"{name}: {auto_name} left {info['missing_keys']} uninitialised"
        with torch.no_grad():
            torch.testing.assert_close(
                loaded.eval()(input_ids=ids).last_hidden_state,
                model.base_model(input_ids=ids).last_hidden_state,
                atol=0,
                rtol=0,
            )


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

PROMPTS = ["the", "a dog", "once upon"]  # 1, 5 and 8 tokens with the tokenizer below
NEW = 8  # prompt + new tokens stay within L = 16 on both padding sides


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A 64-token BPE trained on 200 real lowercase TinyStories (pad 0, eos 1)."""
    with TRAIN.open(encoding="utf-8") as f:
        lines = [json.loads(next(f))["text"] for _ in range(200)]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(
        lines, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>", "<eos>", "<unk>"], limit_alphabet=40)
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>", unk_token="<unk>"
    )
    assert len(tok) == VOCAB
    assert [len(tok(p)["input_ids"]) for p in PROMPTS] == [1, 5, 8]
    return tok


def generation_cases(predicate, reason):
    """(family, padding side) pairs: both sides where positions are rows, else the one generation uses."""
    cases = []
    for param in families(predicate, reason):
        name = param.values[0]
        sides = ["right", "left"] if FAMILIES[name].capabilities.positions_are_rows else ["left"]
        cases += [pytest.param(name, side, id=f"{name}-{side}", marks=param.marks) for side in sides]
    return cases


def ids_with_side(model, tokenizer, prompts, side, max_new_tokens, **kwargs) -> torch.Tensor:
    """Greedy new ids; the cache is used where the family has one unless `use_cache` says otherwise."""
    tokenizer.padding_side = side
    kwargs.setdefault("use_cache", family_of(model).capabilities.cached_generation)
    return generate_ids(model, tokenizer, prompts, max_new_tokens, greedy=True, **kwargs)


@pytest.mark.parametrize("name,side", generation_cases(lambda f: f.capabilities.generates, "does not generate text"))
def test_batched_generation_equals_one_by_one(name, side, tokenizer):
    family = FAMILIES[name]
    model = build(family, seed=1)
    tokenizer.padding_side = side
    inputs = encode_prompts(model, tokenizer, PROMPTS, NEW)
    assert (inputs["attention_mask"][:, 0 if side == "left" else -1] == 0).any(), "the batch is not padded on that side"
    batched = ids_with_side(model, tokenizer, PROMPTS, side, NEW)
    mismatched = []
    for row, prompt in enumerate(PROMPTS):
        alone = ids_with_side(model, tokenizer, [prompt], side, NEW)[0].tolist()
        if batched[row].tolist()[: len(alone)] != alone:  # a batch pads after a row's EOS
            mismatched.append(f"{prompt!r}: batched {batched[row].tolist()} alone {alone}")
    assert not mismatched, f"{name}/{side}: " + "; ".join(mismatched)


def cached_cases():
    cases = []
    for case in generation_cases(lambda f: f.capabilities.cached_generation, "has no generation cache"):
        cases.append(pytest.param(*case.values, NEW, id=case.id, marks=case.marks))
    for param in families(
        lambda f: f.capabilities.cached_generation and f.capabilities.slides_past_context, "does not slide past seq_len"
    ):
        cases.append(pytest.param(param.values[0], "right", 3 * L, id=f"{param.id}-past-seq_len", marks=param.marks))
    return cases


@pytest.mark.parametrize("name,side,new", cached_cases())
def test_cached_generation_equals_uncached(name, side, new, tokenizer):
    family = FAMILIES[name]
    model = build(family, seed=2)
    cached = ids_with_side(model, tokenizer, PROMPTS, side, new, use_cache=True)
    uncached = ids_with_side(model, tokenizer, PROMPTS, side, new, use_cache=False)
    assert cached.shape[1] == new or (cached == tokenizer.eos_token_id).any()
    assert cached.tolist() == uncached.tolist(), (
        f"{name}/{side}/{new} new tokens: cached {cached.tolist()} uncached {uncached.tolist()}"
    )


# ---------------------------------------------------------------------------------------------
# FLOPs, context length, family lookup
# ---------------------------------------------------------------------------------------------

# Knob values that change what a family computes; each family is also counted with the ones it takes.
FLOP_VARIANTS = [
    ("mixer_type", "expanded"),
    ("mixer_type", "multihead"),
    ("linear_variant", "relu"),
    ("linear_variant", "near_linear"),
    ("linear_variant", "near_linear_ff"),
    ("use_feed_forward", False),
    ("feed_forward_attention", True),
    ("compression_dim", 8),
    ("intermediate_size", 48),
]


def flop_cases():
    cases = []
    for name, family in FAMILIES.items():
        cases.append(pytest.param(name, {}, id=name))
        cases += [pytest.param(name, {k: v}, id=f"{name}-{k}={v}") for k, v in FLOP_VARIANTS if k in family.takes]
    return cases


@pytest.mark.parametrize("name,knobs", flop_cases())
def test_declared_flops_match_torch_flop_counter(name, knobs):
    """Family.flops(spec, vocab, t).forward * t against FlopCounterMode over one forward, batch 1, t = L.

    torch's counter counts matmuls (mm, bmm, addmm, baddbmm, sdpa's fused kernels on GPU) at 2 per
    multiply-add, as the declaration does; it has no formula for CPU's fused flash SDPA kernel
    (`_scaled_dot_product_flash_attention_for_cpu`), so families whose declaration has attention
    run with eager attention, whose Q K^T and scores @ V are plain matmuls over the full t x t block
    (under CPU SDPA the counter misses exactly the attention term). Today every family's count agrees
    exactly; the 0.5% tolerance is there for a stray tiny matmul (e.g. rotary frequencies), and is
    well below any block-level term (one layer's attention is >= 2.8% of these tiny models).
    """
    family = FAMILIES[name]
    spec = spec_for(family, **knobs)
    declared = family.flops(spec, VOCAB, L)
    model = build(family, **knobs)
    if declared.attention:
        model.set_attn_implementation("eager")
    ids = torch.randint(3, VOCAB, (1, L), generator=torch.Generator().manual_seed(0))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=ids)
    counted = counter.get_total_flops()
    expected = declared.forward * L
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    assert counted == pytest.approx(expected, rel=0.005), (  # today they agree exactly
        f"{name} {knobs}: torch counts {counted:,} forward FLOPs, the family declares {expected:,.0f} "
        f"(dense {declared.dense * L:,.0f}, token mixing {declared.token_mixing * L:,.0f}, "
        f"attention {declared.attention * L:,.0f}, "
        f"lm head {declared.lm_head * L:,.0f}); counted by op: {by_op}"
    )


@pytest.mark.parametrize("name", NAMES)
def test_context_length_and_family_of(name):
    family = FAMILIES[name]
    model = build(family)
    assert context_length(model.config) == L
    assert family_of(model) is family and family_of(model.config) is family
    assert isinstance(model, family.model_class) and isinstance(model.config, family.config_class)
    other = dataclasses.replace(spec_for(family), seq_len=2 * L)
    assert (
        context_length(
            family.build_config(
                other, dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=LAYERS, tie_word_embeddings=False)
            )
        )
        == 2 * L
    )


def test_family_of_a_model_class():
    """family_of's docstring promises "a model instance or class, or a config": every model class resolves."""
    wrong = {}
    for name, family in FAMILIES.items():
        try:
            found = family_of(family.model_class)
        except ValueError as err:
            found = f"ValueError: {err}"[:80]
        if found is not family:
            wrong[name] = found
    assert not wrong, f"family_of(model class) fails for {sorted(wrong)}: {wrong}"


@pytest.mark.parametrize("name", families(lambda f: f.capabilities.generates, "does not generate text"))
def test_generate_ids_with_its_defaults(name, tokenizer):
    """generate_ids' defaults (use_cache=True, as `masked-mixers generate` without --no-cache) work for
    every family that generates: one without a cache recomputes (Capabilities.cached_generation)."""
    model = build(FAMILIES[name], seed=3)
    tokenizer.padding_side = "right"
    default = generate_ids(model, tokenizer, PROMPTS, 4, greedy=True)
    assert default.tolist() == generate_ids(model, tokenizer, PROMPTS, 4, greedy=True, use_cache=False).tolist()


# ---------------------------------------------------------------------------------------------
# The Trainer's held-out loss is evaluate()'s
# ---------------------------------------------------------------------------------------------


def eval_rows(n: int = 6, seed: int = 0):
    """n rows of length L as the prepared datasets hold them: full (packed) rows, and right-padded
    ones whose pad labels are -100, so a per-row miscount of the labelled tokens shows."""
    from datasets import Dataset

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, L), generator=g)
    mask = torch.ones(n, L, dtype=torch.long)
    for row, real in enumerate((L, L, 11, 6, L, 9)[:n]):
        mask[row, real:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return Dataset.from_dict(
        {
            "input_ids": ids.tolist(),
            "attention_mask": mask.tolist(),
            "labels": ids.masked_fill(mask == 0, -100).tolist(),
        }
    )


@pytest.mark.parametrize("name", NAMES)
def test_trainer_eval_loss_equals_evaluate(name, tmp_path):
    """The eval_loss the HF Trainer logs during training (RobustTrainer.evaluate) equals
    `evaluation.evaluate`'s loss on the same rows: mean cross entropy over every labelled token.

    One batch holds all rows, so the Trainer's mean over batches is that batch's loss and padding
    can be in it. transformers 5.24 counted GPT-2's tokens unshifted (trainer.declare_shifted_loss),
    which made its eval_loss (L - 1) / L of the true one on full rows.
    """
    from transformers import TrainingArguments, default_data_collator

    from masked_mixers.training.evaluation import evaluate
    from masked_mixers.training.trainer import RobustTrainer

    model, rows = build(FAMILIES[name], seed=4), eval_rows()
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=len(rows),
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = RobustTrainer(model=model, args=args, eval_dataset=rows, data_collator=default_data_collator)
    logged = trainer.evaluate()["eval_loss"]
    ours = evaluate(model, rows, batch_size=len(rows), progress=False)["loss"]
    assert logged == pytest.approx(ours, rel=1e-5), (
        f"{name}: Trainer eval_loss {logged:.6f}, evaluate() {ours:.6f} (ratio {logged / ours:.4f})"
    )
