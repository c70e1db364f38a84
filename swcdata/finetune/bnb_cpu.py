"""bitsandbytes' 4-bit layers on a CPU: which kernel runs, and a policy that works on every CPU.

On a CPU with AVX-512 BF16 (recent Xeon and EPYC), bitsandbytes >= 0.49 repacks a `Linear4bit`
weight for a fused bf16 kernel the first time the layer runs in eval mode without gradients. That
fast path has three properties a training run cannot live with:

- it asserts that the layer's output size is a multiple of 32 (`N must be divisible by block_n`)
  and needs the input size to be a multiple of the quantisation block (64): other shapes crash;
- the packed weight stays packed when the model goes back to `train()`, and the packed kernel has no
  autograd formula: after the first evaluation, gradients stop flowing through every base layer
  (LoRA adapters below the last layer silently stop learning);
- it computes in bf16 whatever `bnb_4bit_compute_dtype` says, so a float32 recipe gives other
  numbers on such a CPU than on one without AVX-512 BF16.

bitsandbytes offers the unpacked path on every layer through the `support_avx512bf16_for_cpu`
attribute that `Linear4bit` sets from `has_avx512bf16()` at construction. `configure` turns it off
where the packed kernel must not run: always while training, and at inference for every layer whose
shape cannot be packed, or everywhere when the compute dtype is not bf16. The result is the same
numbers on every CPU, and the packed speed where it is safe (bf16 inference).

bitsandbytes also tries, at import on such a CPU, to fetch an optional kernel from the Hub
(`kernels-community`) and logs a long warning when that repository is not trusted. `quiet_hub_kernel`
replaces that warning with one line that says what it means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

PACK_BLOCK_N = 32  # bitsandbytes' _convert_weight_packed_for_cpu: out_features % 32 == 0
_HUB_KERNEL_LOGGER = "bitsandbytes.backends.cpu.ops"
_HUB_KERNEL_MESSAGE = "Failed to load CPU gemm_4bit_forward from kernels-community"
HUB_KERNEL_NOTE = ("bitsandbytes: the optional AVX-512 CPU kernel from the Hub (kernels-community) is not loaded; "
                   "bitsandbytes' own CPU kernels run instead (same results)")


class _HubKernelFilter(logging.Filter):
    """Drops bitsandbytes' kernels-community warning and remembers that it was raised."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(_HUB_KERNEL_MESSAGE):
            _HubKernelFilter.seen = True
            return False
        return True


def quiet_hub_kernel() -> None:
    """Install the filter (idempotent); call before anything imports bitsandbytes."""
    log = logging.getLogger(_HUB_KERNEL_LOGGER)
    if not any(isinstance(f, _HubKernelFilter) for f in log.filters):
        log.addFilter(_HubKernelFilter())


def hub_kernel_skipped() -> bool:
    """True when bitsandbytes tried the Hub kernel and fell back (the filtered warning was raised)."""
    return _HubKernelFilter.seen


@dataclass
class CpuKernels:
    """What this CPU offers: torch's dispatch level and bitsandbytes' own check."""

    torch_capability: str
    bnb_avx512bf16: bool
    bnb_version: str | None

    def line(self) -> str:
        path = ("packed AVX-512 BF16 kernel available (used only for bf16 inference)" if self.bnb_avx512bf16
                else "reference kernels only")
        return (f"CPU capability {self.torch_capability}; bitsandbytes {self.bnb_version or 'not installed'} "
                f"has_avx512bf16={self.bnb_avx512bf16}: {path}")


def cpu_kernels() -> CpuKernels:
    """Probe the CPU as bitsandbytes and torch see it (imports both)."""
    import torch

    quiet_hub_kernel()
    capability = str(torch.backends.cpu.get_cpu_capability())
    try:
        import bitsandbytes as bnb
        from bitsandbytes.functional import has_avx512bf16
    except ImportError:
        return CpuKernels(capability, False, None)
    return CpuKernels(capability, bool(has_avx512bf16()), getattr(bnb, "__version__", None))


def packable(out_features: int, in_features: int, blocksize: int) -> str | None:
    """None when bitsandbytes can pack a weight of this shape for its CPU kernel, else the rule it breaks."""
    if out_features % PACK_BLOCK_N:
        return f"out_features {out_features} is not a multiple of {PACK_BLOCK_N}"
    if in_features % blocksize:
        return f"in_features {in_features} is not a multiple of the 4-bit block size {blocksize}"
    return None


def unpackable_layers(model: Any) -> list[tuple[str, str]]:
    """(module name, rule broken) for every `Linear4bit` whose shape the packed CPU kernel rejects."""
    bnb = _bnb()
    if bnb is None:
        return []
    out = []
    for name, m in model.named_modules():
        if isinstance(m, bnb.nn.Linear4bit):
            blocksize = getattr(getattr(m.weight, "quant_state", None), "blocksize", None) or m.weight.blocksize
            why = packable(m.out_features, m.in_features, int(blocksize))
            if why:
                out.append((name, why))
    return out


@dataclass
class CpuPolicy:
    """What `configure` decided for a model's 4-bit layers."""

    layers: int = 0
    packed_allowed: int = 0
    reasons: list[str] = field(default_factory=list)

    def line(self) -> str:
        if not self.layers:
            return "no 4-bit layers"
        if self.packed_allowed == self.layers:
            return f"{self.layers} 4-bit layers on bitsandbytes' packed AVX-512 BF16 CPU kernel"
        if not self.packed_allowed:
            why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
            return f"{self.layers} 4-bit layers on bitsandbytes' reference CPU kernel{why}"
        return (f"{self.packed_allowed} of {self.layers} 4-bit layers on the packed AVX-512 BF16 kernel, the rest on "
                f"the reference kernel ({'; '.join(self.reasons)})")


def configure(model: Any, *, training: bool, compute_dtype: Any) -> CpuPolicy:
    """Choose the CPU kernel of every `Linear4bit` in `model` (a no-op off the CPU or without AVX-512 BF16).

    Training never uses the packed kernel (no gradients through packed weights); inference uses it only
    with a bf16 compute dtype, and only on layers whose shape it accepts (`packable`).
    """
    import torch

    bnb = _bnb()
    policy = CpuPolicy()
    if bnb is None:
        return policy
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    policy.layers = len(layers)
    on_cpu = all(m.weight.device.type == "cpu" for _, m in layers)
    if not layers or not on_cpu or not any(getattr(m, "support_avx512bf16_for_cpu", False) for _, m in layers):
        if layers and on_cpu:
            policy.reasons.append("this CPU has no AVX-512 BF16")
        return policy
    if training:
        policy.reasons.append("training: the packed kernel has no gradient")
    elif compute_dtype != torch.bfloat16:
        policy.reasons.append(f"compute dtype {str(compute_dtype).removeprefix('torch.')}: the packed kernel "
                              "computes in bf16")
    bad = dict(unpackable_layers(model))
    if bad and not training and compute_dtype == torch.bfloat16:
        first = next(iter(bad.items()))
        policy.reasons.append(f"{len(bad)} layer(s) the packed kernel cannot take, e.g. {first[0]}: {first[1]}")
    for name, m in layers:
        allowed = not training and compute_dtype == torch.bfloat16 and name not in bad
        m.support_avx512bf16_for_cpu = allowed
        policy.packed_allowed += allowed
    return policy


def _bnb() -> Any:
    quiet_hub_kernel()
    try:
        import bitsandbytes as bnb
    except ImportError:
        return None
    return bnb
