"""Runners: what executes the model over the batch of KV slots of a decode session.

Two runners execute the model:

- ``"fast"`` (CPU, fp32, Llama/Qwen2-style models): a hand-written forward over the model's
  own weights, with a preallocated KV cache, fused QKV and gate/up projections, and the
  linear layers pre-packed for oneDNN (``torch.ops.mkldnn._linear_pointwise``). Same fp32
  arithmetic as the model (no quantisation); results differ from the transformers forward
  only by float summation order (~1e-6 relative). It keeps a packed copy of the linear
  weights per model (about the size of the model again), built once per process.
- ``"hf"``: the model's own ``forward`` with a ``DynamicCache`` (any architecture, CUDA).
  Rows that wait are fed a pad token with attention mask 0 and are counted in
  ``usage.tokens_processed``.

``backend="auto"`` (default) picks ``"fast"`` where it applies; the environment variable
``UNISCALE_DECODE_BACKEND`` (``auto``/``fast``/``hf``) overrides the default.

Opt-in, not the default: ``weights="int8"`` runs the fast runner's linear layers with
per-channel int8 weights and dynamically quantised activations (``torch.ao`` dynamic
quantisation). On the 2-core development CPU it decodes about 2x faster than fp32 (see
``benchmarks/RESULTS.md``) but it is not the same model: greedy outputs diverge from fp32
within a few tokens, and costs and scores are no longer those of the fp32 model.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F  # noqa: N812

if TYPE_CHECKING:
    from uniscale_integrations.models import LoadedModel


Backend = Literal["auto", "fast", "hf"]


Weights = Literal["fp32", "int8"]


class _Runner:
    """Executes the model over a batch of KV slots."""

    name = "base"

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        """Prefill the distinct prompts once; slot ``j`` gets prompt ``src[j]``. Next-token logits per slot."""
        raise NotImplementedError

    def prefill_work(self, mask: torch.Tensor) -> tuple[int, int]:
        """Token positions computed and forward passes made by :meth:`prefill` of the prompts in ``mask``:
        one padded batch."""
        return int(mask.numel()), 1

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Feed one token to each of the first ``len(tokens)`` slots.

        Returns their next-token logits, the rows computed and the attention span read.
        """
        raise NotImplementedError

    def select(self, index: torch.Tensor) -> None:
        """New slot ``j`` is old slot ``index[j]``."""
        raise NotImplementedError

    def compact(self) -> None:
        """Drop cache columns no row needs (optional)."""


def make_runner(loaded: LoadedModel, backend: Backend | None, weights: Weights = "fp32") -> _Runner:
    choice = backend or os.environ.get("UNISCALE_DECODE_BACKEND", "auto")
    if choice not in ("auto", "fast", "hf"):
        raise ValueError(f"unknown decode backend {choice!r} (auto, fast or hf)")
    if weights not in ("fp32", "int8"):
        raise ValueError(f"unknown weights {weights!r} (fp32 or int8)")
    reason = _fast_unsupported(loaded) if choice != "hf" else "the hf backend was asked for"
    if weights == "int8" and reason is not None:
        raise ValueError(f"int8 weights need the fast decode backend, which does not apply: {reason}")
    if reason is None:
        return _FastRunner(_packed_model(loaded.model, weights))
    if choice == "fast":
        raise ValueError(f"the fast decode backend does not apply: {reason}")
    return _HFRunner(loaded.model)


class _HFRunner(_Runner):
    """The model's own forward with a ``DynamicCache``; idle slots are fed masked pad tokens."""

    name = "hf"

    def __init__(self, model: Any):
        self.model = model
        pad = getattr(model.generation_config, "pad_token_id", None)
        if isinstance(pad, list):
            pad = pad[0] if pad else None
        self.pad_id = int(pad) if pad is not None else 0

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache.batch_select_indices(src)
        self.mask = mask.index_select(0, src)
        self.length = self.mask.sum(dim=1)
        return out.logits[:, -1].index_select(0, src)

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        rows = self.mask.shape[0]
        count = tokens.shape[0]
        ids = torch.full((rows, 1), self.pad_id, dtype=torch.long, device=tokens.device)
        ids[:count, 0] = tokens
        column = torch.zeros((rows, 1), dtype=self.mask.dtype, device=self.mask.device)
        column[:count] = 1
        self.mask = torch.cat([self.mask, column], dim=1)
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=self.length.unsqueeze(1),
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.length = self.length + column[:, 0]
        return out.logits[:count, -1], rows, int(self.mask.shape[1])

    def select(self, index: torch.Tensor) -> None:
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self.length = self.length.index_select(0, index)


_FAST_MODEL_TYPES = ("llama", "qwen2")


def _fast_unsupported(loaded: LoadedModel) -> str | None:
    """Why the fast runner cannot run this model, or ``None`` when it can."""
    model = loaded.model
    config = model.config
    if torch.device(loaded.device).type != "cpu":
        return f"device {loaded.device} (CPU only)"
    if loaded.dtype != torch.float32:
        return f"dtype {loaded.dtype} (fp32 only)"
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return "torch has no oneDNN linear kernels"
    if getattr(config, "model_type", None) not in _FAST_MODEL_TYPES:
        return f"architecture {getattr(config, 'model_type', None)!r} (supported: {', '.join(_FAST_MODEL_TYPES)})"
    if getattr(config, "hidden_act", "silu") != "silu" or getattr(config, "pretraining_tp", 1) != 1:
        return "non-standard MLP"
    if getattr(config, "use_sliding_window", False) or any(
        t != "full_attention" for t in getattr(config, "layer_types", None) or ()
    ):
        return "sliding-window attention"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or len(inner.layers) != config.num_hidden_layers:
        return "unexpected module layout"
    return None


class _Linear:
    """A linear layer with its weight packed for oneDNN (fp32, same arithmetic as ``F.linear``).

    With ``int8``: per-channel int8 weights and dynamically quantised activations
    (``torch.ao`` dynamic quantisation, fbgemm); an opt-in that changes the numerics.
    """

    def __init__(self, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None], *, int8: bool = False):
        weight = torch.cat([w.detach() for w in weights]) if len(weights) > 1 else weights[0].detach()
        self.out_features = int(weight.shape[0])
        if all(b is None for b in biases):
            self.bias: torch.Tensor | None = None
        else:
            self.bias = torch.cat(
                [b.detach() if b is not None else w.new_zeros(w.shape[0]) for w, b in zip(weights, biases, strict=True)]
            ).contiguous()
        self._int8: Any = None
        if int8:
            self._int8 = _int8_linear(weight, self.bias)
        else:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._int8 is not None:
            return self._int8(x)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


def _int8_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> Any:
    import warnings

    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    with torch.inference_mode(False):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        linear.weight = torch.nn.Parameter(weight.clone(), requires_grad=False)
        if bias is not None:
            linear.bias = torch.nn.Parameter(bias.clone(), requires_grad=False)
        linear.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch deprecates quantized tensor creation
            return DynamicLinear.from_float(linear)


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: _Linear
    o: _Linear
    norm2: torch.Tensor
    gate_up: _Linear
    down: _Linear


@dataclass
class _PackedModel:
    embed: torch.Tensor
    layers: list[_Layer]
    norm: torch.Tensor
    head: _Linear
    rotary: Any
    eps: float
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    scaling: float


_PACKED: weakref.WeakKeyDictionary[Any, dict[str, _PackedModel]] = weakref.WeakKeyDictionary()


_PACK_LOCK = threading.Lock()


def _packed_model(model: Any, weights: Weights = "fp32") -> _PackedModel:
    """The model's weights packed for the fast runner; built once per model object and kind."""
    with _PACK_LOCK:
        kinds = _PACKED.setdefault(model, {})
        packed = kinds.get(weights)
        if packed is None:
            with torch.inference_mode():
                packed = _pack(model, int8=weights == "int8")
            kinds[weights] = packed
        return packed


def _pack(model: Any, *, int8: bool = False) -> _PackedModel:
    config = model.config
    inner = model.model
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    layers = []
    for layer in inner.layers:
        attn, mlp = layer.self_attn, layer.mlp
        layers.append(
            _Layer(
                norm1=layer.input_layernorm.weight.detach(),
                qkv=_Linear(
                    [attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight],
                    [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias],
                    int8=int8,
                ),
                o=_Linear([attn.o_proj.weight], [attn.o_proj.bias], int8=int8),
                norm2=layer.post_attention_layernorm.weight.detach(),
                gate_up=_Linear(
                    [mlp.gate_proj.weight, mlp.up_proj.weight], [mlp.gate_proj.bias, mlp.up_proj.bias], int8=int8
                ),
                down=_Linear([mlp.down_proj.weight], [mlp.down_proj.bias], int8=int8),
            )
        )
    head = model.get_output_embeddings()
    return _PackedModel(
        embed=inner.embed_tokens.weight.detach(),
        layers=layers,
        norm=inner.norm.weight.detach(),
        head=_Linear([head.weight], [getattr(head, "bias", None)], int8=int8),
        rotary=inner.rotary_emb,
        eps=float(config.rms_norm_eps),
        heads=heads,
        kv_heads=int(config.num_key_value_heads),
        head_dim=head_dim,
        intermediate=int(config.intermediate_size),
        scaling=float(getattr(inner.layers[0].self_attn, "scaling", head_dim**-0.5)),
    )


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm exactly as transformers' Llama/Qwen2 (fp32)."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class _FastRunner(_Runner):
    """Hand-written Llama/Qwen2 forward over packed weights and a preallocated KV cache.

    KV cache: ``[layers, slots, kv_heads, capacity, head_dim]``, one column per decode
    step shared by all slots, with a per-slot validity mask (left padding, and the steps a
    slot sat out). Each slot's next position id is its count of valid columns.
    """

    name = "fast"

    def __init__(self, packed: _PackedModel):
        self.p = packed

    def _mlp(self, layer: _Layer, x: torch.Tensor) -> torch.Tensor:
        gate_up = layer.gate_up(_rms(x, layer.norm2, self.p.eps))
        gate, up = gate_up.split(self.p.intermediate, dim=-1)
        return x + layer.down(F.silu(gate) * up)

    def prefill(self, input_ids: torch.Tensor, mask: torch.Tensor, src: torch.Tensor, budget: int) -> torch.Tensor:
        """Each distinct prompt runs on its own, unpadded, with the kernel's causal flag (no
        length-by-length mask is built); its keys and values go right-aligned into the cache."""
        p = self.p
        prompts, length = input_ids.shape
        valid = mask.bool()
        rows = int(src.shape[0])
        capacity = length + min(budget, 256) + 1
        shape = (len(p.layers), rows, p.kv_heads, capacity, p.head_dim)
        self.k = torch.zeros(shape, dtype=p.embed.dtype, device=input_ids.device)
        self.v = torch.zeros(shape, dtype=p.embed.dtype, device=input_ids.device)
        logits = []
        for prompt in range(prompts):
            ids = input_ids[prompt, valid[prompt]]
            slots = (src == prompt).nonzero().squeeze(1)
            logits.append(self._prefill_one(ids, slots, length))
        self.valid = torch.zeros((rows, capacity), dtype=torch.bool, device=input_ids.device)
        self.valid[:, :length] = valid.index_select(0, src)
        self.length = valid.sum(dim=1).index_select(0, src)
        self.span = length
        return torch.stack(logits).index_select(0, src)

    def prefill_work(self, mask: torch.Tensor) -> tuple[int, int]:
        """Each prompt unpadded, in a pass of its own."""
        return int(mask.sum()), int(mask.shape[0])

    def _prefill_one(self, ids: torch.Tensor, slots: torch.Tensor, end: int) -> torch.Tensor:
        """One prompt's forward pass; its cache goes to ``slots`` at columns ``end - len(ids) .. end``."""
        p = self.p
        heads, kv_heads, dim = p.heads, p.kv_heads, p.head_dim
        n = int(ids.shape[0])
        positions = torch.arange(n, device=ids.device).unsqueeze(0)
        x = F.embedding(ids.unsqueeze(0), p.embed)
        cos, sin = p.rotary(x, positions)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
        h = x.reshape(n, -1)
        for index, layer in enumerate(p.layers):
            qkv = layer.qkv(_rms(h, layer.norm1, p.eps)).view(1, n, heads + 2 * kv_heads, dim)
            qk = _rotate(qkv[:, :, : heads + kv_heads], cos, sin)
            q = qk[:, :, :heads].transpose(1, 2)
            k = qk[:, :, heads:].transpose(1, 2)
            v = qkv[:, :, heads + kv_heads :].transpose(1, 2)
            if slots.numel():
                self.k[index, slots, :, end - n : end] = k
                self.v[index, slots, :, end - n : end] = v
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=p.scaling, enable_gqa=True)
            h = h + layer.o(att.transpose(1, 2).reshape(n, heads * dim))
            h = self._mlp(layer, h)
        return p.head(_rms(h[-1:], p.norm, p.eps)).squeeze(0)

    def decode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        p = self.p
        count = int(tokens.shape[0])
        heads, kv_heads, dim = p.heads, p.kv_heads, p.head_dim
        col = self.span
        self._reserve(col + 1)
        self.valid[:count, col] = True
        span = col + 1
        attn_mask = self.valid[:count, :span].view(count, 1, 1, span)
        x = F.embedding(tokens, p.embed)
        cos, sin = p.rotary(x, self.length[:count].unsqueeze(1))  # [count, 1, dim]
        for index, layer in enumerate(p.layers):
            qkv = layer.qkv(_rms(x, layer.norm1, p.eps)).view(count, heads + 2 * kv_heads, dim)
            qk = _rotate(qkv[:, : heads + kv_heads], cos, sin)
            keys, values = self.k[index, :count], self.v[index, :count]
            keys[:, :, col] = qk[:, heads:]
            values[:, :, col] = qkv[:, heads + kv_heads :]
            q = qk[:, :heads].reshape(count, kv_heads, heads // kv_heads, dim)
            att = F.scaled_dot_product_attention(
                q, keys[:, :, :span], values[:, :, :span], attn_mask=attn_mask, scale=p.scaling
            )
            x = x + layer.o(att.reshape(count, heads * dim))
            x = self._mlp(layer, x)
        logits = p.head(_rms(x, p.norm, p.eps))
        self.length[:count] += 1
        self.span = span
        return logits, count, span

    def _reserve(self, needed: int) -> None:
        capacity = self.k.shape[3]
        if needed <= capacity:
            return
        self._rebuild(None, max(needed, capacity * 2))

    def _rebuild(self, index: torch.Tensor | None, capacity: int) -> None:
        span = self.span
        k, v, valid = self.k[:, :, :, :span], self.v[:, :, :, :span], self.valid[:, :span]
        if index is not None:
            k, v, valid = k.index_select(1, index), v.index_select(1, index), valid.index_select(0, index)
        shape = (k.shape[0], k.shape[1], k.shape[2], capacity, k.shape[4])
        self.k = k.new_zeros(shape)
        self.v = v.new_zeros(shape)
        self.k[:, :, :, :span] = k
        self.v[:, :, :, :span] = v
        self.valid = valid.new_zeros((valid.shape[0], capacity))
        self.valid[:, :span] = valid

    def select(self, index: torch.Tensor) -> None:
        self._rebuild(index, self.k.shape[3])
        self.length = self.length.index_select(0, index)

    def compact(self) -> None:
        """Right-align each slot's valid columns so the span is the longest slot's length."""
        rows = self.valid.shape[0]
        if rows == 0:
            return
        longest = int(self.length.max())
        span = self.span
        if longest >= span:
            return
        order = torch.sort(self.valid[:, :span].to(torch.uint8), dim=1, stable=True)
        columns = order.indices[:, span - longest :]  # invalid columns first, then valid ones in order
        slot = torch.arange(rows, device=columns.device).unsqueeze(1)
        capacity = self.k.shape[3]
        for name in ("k", "v"):
            old = getattr(self, name)
            moved = old[:, slot, :, columns]  # [rows, longest, layers, kv_heads, dim]
            new = old.new_zeros(old.shape[0], rows, old.shape[2], capacity, old.shape[4])
            new[:, :, :, :longest] = moved.permute(2, 0, 3, 1, 4)
            setattr(self, name, new)
        valid = self.valid.new_zeros((rows, capacity))
        valid[:, :longest] = order.values[:, span - longest :].bool()
        self.valid = valid
        self.span = longest
