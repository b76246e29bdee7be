"""CUDA-only checks (skipped without a CUDA device; scripts/gpu-check.sh runs them with `-m cuda`)."""

import copy

import pytest
import torch

from masked_mixers.generation.compiled import static_greedy_generate
from masked_mixers.models.masked_mixer.triangular import set_triangular_tile
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

VOCAB = 256


def _mixer(mixer_type: str = "flat", **sizes):
    torch.manual_seed(0)
    spec = ModelSpec(
        family="mixer", mixer_type=mixer_type, hidden_size=64, num_hidden_layers=2, seq_len=64, num_heads=4, **sizes
    )
    return build_model(spec, VOCAB)[0]


def _ids(batch: int = 2, t: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, t), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _exact_fp32():
    """TF32 would make CUDA fp32 matmuls differ from the CPU's by ~1e-3: compare full fp32."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("family", ["mixer", "llama"])
def test_fp32_cuda_logits_match_cpu(family):
    torch.manual_seed(0)
    model = build_model(ModelSpec(family=family, hidden_size=64, num_hidden_layers=2, seq_len=64, num_heads=4), VOCAB)[
        0
    ].eval()
    ids = _ids()
    with torch.no_grad():
        cpu = model(input_ids=ids).logits
        gpu = model.cuda()(input_ids=ids.cuda()).logits.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("family", ["mixer", "llama"])
def test_bf16_training_step_is_finite(family):
    torch.manual_seed(0)
    model = (
        build_model(ModelSpec(family=family, hidden_size=64, num_hidden_layers=2, seq_len=64, num_heads=4), VOCAB)[0]
        .cuda()
        .train()
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    ids = _ids(4).cuda()
    losses = []
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_cached_generation_equals_uncached_on_cuda(mixer_type):
    model = _mixer(mixer_type).cuda().eval()
    ids = _ids(3, 20).cuda()
    kwargs = dict(max_new_tokens=30, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = model.generate(ids, use_cache=True, **kwargs)
    uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    graph = static_greedy_generate(model, ids, 30, mode="cuda-graph")
    assert torch.equal(graph, uncached)


def test_cuda_graph_decoding_in_bf16_matches_eager_static_step():
    model = _mixer().cuda().to(torch.bfloat16).eval()
    ids = _ids(2, 16).cuda()
    assert torch.equal(
        static_greedy_generate(model, ids, 40, mode="cuda-graph"), static_greedy_generate(model, ids, 40, mode="eager")
    )


def test_compiled_model_matches_eager_forward_and_backward():
    model = _mixer().cuda()
    compiled = torch.compile(copy.deepcopy(model))
    ids = _ids(4).cuda()
    eager_out = model(input_ids=ids, labels=ids)
    compiled_out = compiled(input_ids=ids, labels=ids)
    torch.testing.assert_close(compiled_out.logits, eager_out.logits, rtol=1e-4, atol=1e-4)
    eager_out.loss.backward()
    compiled_out.loss.backward()
    eager_grads = dict(model.named_parameters())
    for name, p in compiled.named_parameters():
        torch.testing.assert_close(
            p.grad, eager_grads[name.removeprefix("_orig_mod.")].grad, rtol=1e-3, atol=1e-5, msg=name
        )


def test_triangular_tiles_match_dense_on_cuda():
    model = _mixer().cuda()
    ids = _ids(2, 61).cuda()  # 61: not a multiple of the tile
    dense = model(input_ids=ids, labels=ids)
    dense.loss.backward()
    dense_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    set_triangular_tile(model, 16)
    tiled = model(input_ids=ids, labels=ids)
    tiled.loss.backward()
    torch.testing.assert_close(tiled.logits, dense.logits, rtol=1e-4, atol=1e-4)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, dense_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_training_records_gpu_time_of_its_steps(tmp_path):
    """gpu_seconds: CUDA time of the training steps, positive and within the training's wall clock."""
    import json

    from standin_data import prepare_standin

    from masked_mixers.runs.config import RunConfig, TrainConfig
    from masked_mixers.training.train import train

    run = RunConfig(
        model=ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=2, seq_len=32),
        train=TrainConfig(
            output_dir=str(tmp_path),
            max_steps=6,
            batch_size=4,
            eval_steps=0,
            save_steps=0,
            logging_steps=2,
            precision="fp32",
        ),
    )
    result = train(run, prepare_standin(None, 32, n_train=64, n_eval=16))
    assert result.gpu_seconds is not None and 0 < result.gpu_seconds <= result.train_seconds
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= r["gpu_s"] <= r["elapsed_s"] for r in records)
