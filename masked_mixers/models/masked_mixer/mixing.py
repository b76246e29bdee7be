"""Token mixing: the masked L x L layers that replace self-attention in a masked mixer.

Every layer here keeps a full-size weight parameter and applies the causal mask *inside*
forward (`torch.tril`, or an explicit position mask for the expanded layer). The masked
entries are initialised to zero and receive exactly zero gradient, so AdamW never moves them
(zero gradient -> zero moments -> zero update; decoupled weight decay of a zero stays zero) and
saved checkpoints are causal. The paper's reference code instead overwrote the weights each
forward pass, which let the optimizer keep updating the upper triangle; we do not.

No mask is stored as a buffer: transformers 5 builds models on the meta device inside
`from_pretrained`, and a non-persistent buffer made in `__init__` would come back as garbage.
An input of t <= L tokens uses the top-left t x t block of each matrix.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor
from transformers import initialization as init

from .triangular import lower_triangular_matmul


def causal_mask(rows: int, cols: int, row_group: int = 1, col_group: int = 1, device=None) -> torch.Tensor:
    """Boolean (rows, cols) mask: True where output row r may read input column c.

    Row r stands for sequence position r // row_group and column c for position c // col_group,
    so an expanded layer (several units per position) stays causal position by position.
    """
    r = torch.arange(rows, device=device) // row_group
    c = torch.arange(cols, device=device) // col_group
    return r[:, None] >= c[None, :]


def _apply_padding(x: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded positions so they add nothing to any other position's mixture."""
    if padding_mask is None:
        return x
    return x * padding_mask[..., None].to(x.dtype)


def _as(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """tensor in `dtype`; no call at all when it already is (a decoding step makes dozens of these)."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _write(store: torch.Tensor, at, rows: torch.Tensor, values: torch.Tensor) -> None:
    """store[b, rows[b, i]] = values[b, i]: put new positions into a preallocated (batch, slots, ...) cache."""
    store[at.batch_index, rows] = values.to(store.dtype)


def _mix(w: torch.Tensor, x: torch.Tensor, tile: int) -> torch.Tensor:
    """w @ x for a masked (lower-triangular) w: dense, or blocked over lower tiles when tile > 0."""
    return lower_triangular_matmul(w, x, tile) if tile else torch.matmul(w, x)


def _rows(
    weight: torch.Tensor, rows: torch.Tensor, width: int, positions: torch.Tensor, dtype, col_group: int = 1
) -> torch.Tensor:
    """weight[rows[b, i], :width], masked to the columns position positions[b, i] may read, in `dtype`.

    (b, n) rows -> (b, n, width). The mask is applied to the gathered rows only (O(n width) per step
    rather than O(L^2) per step, or a masked copy of W kept for the whole generation, which would
    hide the parameter from anything that wraps it).
    """
    cols = torch.arange(width, device=rows.device) // col_group
    return (weight[rows, :width] * (cols <= positions[..., None])).to(dtype)


def _init_uniform_masked(weight: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor) -> None:
    """PyTorch's default Conv1d/Linear init (as in the paper's reference code), masked entries zero."""
    bound = 1.0 / math.sqrt(weight.shape[-1])
    init.uniform_(weight, -bound, bound)
    init.copy_(weight, weight * mask.to(weight.dtype))
    init.uniform_(bias, -bound, bound)


def _save_causal(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """state_dict post-hook: the saved mixing weights have zero future entries, whatever the parameters hold.

    Forward masks the future anyway, so the entries are never used; but weights merged into a
    mixing matrix from outside (a LoRA `merge_and_unload`, a hand edit) can make them non-zero, and a
    saved checkpoint should say what the model computes. New tensors replace the entries (the
    state dict's tensors share storage with the parameters, which are left as they are).
    """
    for name, mask in module.causal_masks().items():
        key = prefix + name
        if key in state_dict:
            state_dict[key] = _masked(state_dict[key], mask)


def _masked(tensor: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """tensor * mask; a sharded tensor (FSDP2's DTensor) is multiplied by the mask split the same way."""
    mask = mask.to(device=tensor.device, dtype=tensor.dtype)
    if isinstance(tensor, DTensor):  # each process cuts its own shard of the mask: no communication
        mask = distribute_tensor(
            mask.expand(tensor.shape).contiguous(), tensor.device_mesh, tensor.placements, src_data_rank=None
        )
    return tensor * mask


class FlatTokenMixing(nn.Module):
    """One masked L x L mixing: y[:, i] = sum_{j<=i} W[i, j] x[:, j] + b[i], shared across features."""

    def __init__(self, seq_len: int, triangular_tile: int = 0):
        super().__init__()
        self.seq_len = seq_len
        self.triangular_tile = triangular_tile  # > 0: skip the masked upper triangle (triangular.py)
        self.weight = nn.Parameter(torch.empty(seq_len, seq_len))
        self.bias = nn.Parameter(torch.empty(seq_len))
        self.register_state_dict_post_hook(_save_causal)

    def causal_masks(self) -> dict[str, torch.Tensor]:
        """{parameter name: (rows, cols) mask of the entries forward may use}."""
        return {"weight": causal_mask(self.seq_len, self.seq_len, device=self.weight.device)}

    def reset_parameters(self) -> None:
        _init_uniform_masked(self.weight, self.bias, causal_mask(self.seq_len, self.seq_len, device=self.weight.device))

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, cached: tuple | None = None
    ) -> torch.Tensor:
        """Mix over positions; `cached` = (SlotBatch, layer state): x holds only the new positions."""
        if cached is not None:
            return self.forward_cached(x, *cached)
        t = x.shape[1]
        w = torch.tril(self.weight[:t, :t])  # (t, t), lower-triangular
        # (t, t) @ (batch, t, d) -> (batch, t, d): mix over positions, same weights for every feature
        return _mix(w, _apply_padding(x, padding_mask), self.triangular_tile) + self.bias[:t, None]

    @staticmethod
    def new_state(config, batch: int, dtype, device) -> dict[str, torch.Tensor]:
        return {"x": torch.zeros(batch, config.seq_len, config.hidden_size, dtype=dtype, device=device)}

    def forward_cached(self, x: torch.Tensor, at, state: dict) -> torch.Tensor:
        """Outputs at positions `at.rows` (batch, t), reading the cached inputs of all earlier positions.

        `at` (a `SlotBatch`) also has `valid` (batch, t; None: all real) and `end` (= max row + 1, the slots read).
        Only the rows of W the new positions use are read (and masked), from the parameter itself,
        so whatever stands in for it (a LoRA parametrization, a loaded state dict) is what decodes.
        """
        rows, p = at.rows, at.end
        store = state["x"]
        if at.slot is not None:  # one token per row, all at slot p - 1: row p - 1 of W, unmasked (SlotBatch.slot)
            store[:, at.slot : p] = x
            w, bias = (
                _as(self.weight[at.slot : p, :p], store.dtype),
                _as(self.bias[at.slot : p, None], store.dtype),
            )  # (1, p), (1, 1)
            # (b, 1, p) @ (b, p, d) + (1, 1) -> (b, 1, d); expand is a view: W's row is not copied per row
            return _as(torch.baddbmm(bias, w.expand(x.shape[0], 1, p), store[:, :p]), x.dtype)
        _write(store, at, rows, _apply_padding(x, at.valid))
        w = _rows(self.weight, rows, p, rows, store.dtype)  # (b, t, p), masked to j <= row
        # one row of W per new position: (b, t, p) @ (b, p, d) + (b, t, 1) -> (b, t, d), O(t p d)
        return torch.baddbmm(self.bias[rows, None].to(store.dtype), w, store[:, :p]).to(x.dtype)


class ExpandedTokenMixing(nn.Module):
    """Two masked mixings L -> e*L -> L with a GELU between.

    Unit k of the wide layer belongs to sequence position k // e: it reads positions <= k // e
    and is read by positions >= k // e, so the composition stays causal and every unit is used.
    """

    def __init__(self, seq_len: int, expansion: int):
        super().__init__()
        self.seq_len, self.expansion = seq_len, expansion
        wide = seq_len * expansion
        self.weight_in = nn.Parameter(torch.empty(wide, seq_len))
        self.bias_in = nn.Parameter(torch.empty(wide))
        self.weight_out = nn.Parameter(torch.empty(seq_len, wide))
        self.bias_out = nn.Parameter(torch.empty(seq_len))
        self.register_state_dict_post_hook(_save_causal)

    def causal_masks(self) -> dict[str, torch.Tensor]:
        mask_in, mask_out = self._masks(self.seq_len, self.weight_in.device)
        return {"weight_in": mask_in, "weight_out": mask_out}

    def _masks(self, t: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.expansion
        return causal_mask(e * t, t, row_group=e, device=device), causal_mask(t, e * t, col_group=e, device=device)

    def reset_parameters(self) -> None:
        mask_in, mask_out = self._masks(self.seq_len, self.weight_in.device)
        _init_uniform_masked(self.weight_in, self.bias_in, mask_in)
        _init_uniform_masked(self.weight_out, self.bias_out, mask_out)

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, cached: tuple | None = None
    ) -> torch.Tensor:
        """Mix over positions; `cached` = (SlotBatch, layer state): x holds only the new positions."""
        if cached is not None:
            return self.forward_cached(x, *cached)
        t, e = x.shape[1], self.expansion
        mask_in, mask_out = self._masks(t, x.device)
        w_in = self.weight_in[: e * t, :t] * mask_in  # (e*t, t)
        w_out = self.weight_out[:t, : e * t] * mask_out  # (t, e*t)
        # (batch, t, d) -> (batch, e*t, d): widen over positions
        h = F.gelu(torch.matmul(w_in, _apply_padding(x, padding_mask)) + self.bias_in[: e * t, None])
        # (batch, e*t, d) -> (batch, t, d)
        return torch.matmul(w_out, h) + self.bias_out[:t, None]

    @staticmethod
    def new_state(config, batch: int, dtype, device) -> dict[str, torch.Tensor]:
        wide, d = config.expansion * config.seq_len, config.hidden_size
        return {
            "x": torch.zeros(batch, config.seq_len, d, dtype=dtype, device=device),
            "h": torch.zeros(batch, wide, d, dtype=dtype, device=device),  # the wide layer, post-GELU
        }

    def forward_cached(self, x: torch.Tensor, at, state: dict) -> torch.Tensor:
        """Outputs at positions `at.rows` (batch, t): new wide units e*i..e*i+e-1 read the cached inputs."""
        e = self.expansion
        rows, p = at.rows, at.end
        dtype = state["x"].dtype
        if at.slot is not None:
            return self._forward_slot(x, at.slot, state)
        _write(state["x"], at, rows, _apply_padding(x, at.valid))
        wide_rows = (e * rows[..., None] + torch.arange(e, device=rows.device)).flatten(1)  # (b, e*t)
        w_in = _rows(self.weight_in, wide_rows, p, wide_rows // e, dtype)  # (b, e*t, p)
        h = F.gelu(torch.baddbmm(self.bias_in[wide_rows, None].to(dtype), w_in, state["x"][:, :p]))  # (b, e*t, d)
        _write(state["h"], at, wide_rows, h)
        w_out = _rows(self.weight_out, rows, e * p, rows, dtype, col_group=e)  # (b, t, e*p)
        # (b, t, e*p) @ (b, e*p, d) -> (b, t, d)
        return torch.baddbmm(self.bias_out[rows, None].to(dtype), w_out, state["h"][:, : e * p]).to(x.dtype)

    def _forward_slot(self, x: torch.Tensor, slot: int, state: dict) -> torch.Tensor:
        """forward_cached for one token per row, every row at `slot` (SlotBatch.slot): the same
        arithmetic on slices. Wide units e*slot .. e*slot+e-1 read positions <= slot, i.e. all of :p,
        and position `slot` reads wide units < e*p: no mask applies."""
        b, e, p = x.shape[0], self.expansion, slot + 1
        dtype, wide = state["x"].dtype, slice(e * slot, e * p)
        state["x"][:, slot:p] = x
        w_in = _as(self.weight_in[wide, :p], dtype).expand(b, e, p)  # (b, e, p), a view
        h = F.gelu(torch.baddbmm(_as(self.bias_in[wide, None], dtype), w_in, state["x"][:, :p]))  # (b, e, d)
        state["h"][:, wide] = h
        w_out = _as(self.weight_out[slot:p, : e * p], dtype).expand(b, 1, e * p)  # (b, 1, e*p)
        return _as(
            torch.baddbmm(_as(self.bias_out[slot:p, None], dtype), w_out, state["h"][:, : e * p]), x.dtype
        )  # (b, 1, d)


class MultiHeadTokenMixing(nn.Module):
    """h heads, each with its own projection d -> d/h and its own masked L x L mixing."""

    def __init__(self, seq_len: int, hidden_size: int, num_heads: int, triangular_tile: int = 0):
        super().__init__()
        self.seq_len, self.num_heads = seq_len, num_heads
        self.triangular_tile = triangular_tile  # > 0: skip the masked upper triangle (triangular.py)
        self.head_dim = hidden_size // num_heads
        self.proj_in = nn.Linear(hidden_size, hidden_size)  # the h projections d -> d/h, side by side
        self.weight = nn.Parameter(torch.empty(num_heads, seq_len, seq_len))
        self.bias = nn.Parameter(torch.empty(num_heads, seq_len))
        self.proj_out = nn.Linear(hidden_size, hidden_size)
        self.register_state_dict_post_hook(_save_causal)

    def causal_masks(self) -> dict[str, torch.Tensor]:
        return {"weight": causal_mask(self.seq_len, self.seq_len, device=self.weight.device)}  # broadcast over heads

    def reset_parameters(self) -> None:
        _init_uniform_masked(self.weight, self.bias, causal_mask(self.seq_len, self.seq_len, device=self.weight.device))

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, cached: tuple | None = None
    ) -> torch.Tensor:
        """Mix over positions; `cached` = (SlotBatch, layer state): x holds only the new positions."""
        if cached is not None:
            return self.forward_cached(x, *cached)
        b, t, _ = x.shape
        v = self.proj_in(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (b, h, t, d/h)
        if padding_mask is not None:
            v = v * padding_mask[:, None, :, None].to(v.dtype)
        w = torch.tril(self.weight[:, :t, :t])  # (h, t, t)
        y = _mix(w, v, self.triangular_tile) + self.bias[:, :t, None]  # (b, h, t, d/h): mix over positions per head
        return self.proj_out(y.transpose(1, 2).reshape(b, t, -1))  # concat heads -> (b, t, d)

    @staticmethod
    def new_state(config, batch: int, dtype, device) -> dict[str, torch.Tensor]:
        # the projected heads, (b, h, L, d/h): the per-step matmul reads them without a copy
        h = config.num_heads
        return {"v": torch.zeros(batch, h, config.seq_len, config.hidden_size // h, dtype=dtype, device=device)}

    def forward_cached(self, x: torch.Tensor, at, state: dict) -> torch.Tensor:
        """Outputs at positions `at.rows` (batch, t): each head mixes its cached projections."""
        b, t, _ = x.shape
        rows, p = at.rows, at.end
        store = state["v"]
        v = self.proj_in(x).view(b, t, self.num_heads, self.head_dim)
        if (
            at.slot is not None
        ):  # one token per row, all at slot p - 1: each head's row p - 1, unmasked (SlotBatch.slot)
            store[:, :, at.slot] = v[:, 0]  # (b, h, d/h)
            w, bias = (
                _as(self.weight[:, at.slot : p, :p], store.dtype),
                _as(self.bias[:, at.slot : p, None], store.dtype),
            )  # (h, 1, p), (h, 1, 1)
            y = torch.matmul(w, store[:, :, :p]) + bias  # (h, 1, p) @ (b, h, p, d/h) -> (b, h, 1, d/h)
            return self.proj_out(_as(y.transpose(1, 2).reshape(b, 1, -1), x.dtype))
        if at.valid is not None:  # padded positions add nothing
            v = v * at.valid[..., None, None].to(v.dtype)
        store[at.batch_index, :, rows] = v.to(store.dtype)  # (b, t) index pairs, then heads: takes (b, t, h, d/h)
        causal = torch.arange(p, device=rows.device) <= rows[..., None]  # (b, t, p)
        w_rows = (self.weight[:, rows, :p] * causal).transpose(0, 1).to(store.dtype)  # (h, b, t, p) -> (b, h, t, p)
        bias = self.bias[:, rows, None].transpose(0, 1).to(store.dtype)  # (b, h, t, 1)
        y = torch.matmul(w_rows, store[:, :, :p]) + bias  # (b, h, t, d/h)
        return self.proj_out(y.transpose(1, 2).reshape(b, t, -1).to(x.dtype))


TOKEN_MIXINGS = {"flat": FlatTokenMixing, "expanded": ExpandedTokenMixing, "multihead": MultiHeadTokenMixing}
TOKEN_MIXING_TYPES = tuple(TOKEN_MIXINGS.values())


def _mixing_class(config) -> type:
    if config.mixer_type not in TOKEN_MIXINGS:
        raise ValueError(f"unknown mixer_type {config.mixer_type!r}")
    return TOKEN_MIXINGS[config.mixer_type]


def build_token_mixing(config) -> nn.Module:
    """The token-mixing layer that `config.mixer_type` names."""
    if config.mixer_type == "flat":
        return FlatTokenMixing(config.seq_len, getattr(config, "triangular_tile", 0))
    if config.mixer_type == "expanded":
        return ExpandedTokenMixing(config.seq_len, config.expansion)
    if config.mixer_type == "multihead":
        return MultiHeadTokenMixing(
            config.seq_len, config.hidden_size, config.num_heads, getattr(config, "triangular_tile", 0)
        )
    raise ValueError(f"unknown mixer_type {config.mixer_type!r}")


def new_mixing_state(config, batch: int, dtype, device) -> dict[str, torch.Tensor]:
    """The empty cache state of one layer's token mixing (see cache.py), from the config alone:
    the layer itself may be wrapped (a PEFT ParamWrapper has none of the mixing's methods)."""
    return _mixing_class(config).new_state(config, batch, dtype, device)
