"""bitsandbytes' 4-bit layers on a CPU: the policy in `swcdata.finetune.bnb_cpu` works on both kinds of CPU.

On a CPU with AVX-512 BF16, bitsandbytes packs a 4-bit weight for a fused kernel at the first no-grad
eval forward: that crashes on shapes it cannot pack, and (shown below) leaves the layer without
gradients once it trains again. The tests run the real layers on this machine's CPU, whichever kind
it is, and force the other kind's path through the same attribute bitsandbytes reads.
"""

from __future__ import annotations

from typing import Any

import pytest

bnb = pytest.importorskip("bitsandbytes")
torch = pytest.importorskip("torch")

from swcdata.finetune import bnb_cpu  # noqa: E402


def _model(out_features: int, in_features: int = 64, compute: Any = None) -> Any:
    torch.manual_seed(0)
    lin = bnb.nn.Linear4bit(in_features, out_features, bias=False, quant_type="nf4",
                            compute_dtype=compute or torch.float32)
    lin.weight = bnb.nn.Params4bit(torch.randn(out_features, in_features), requires_grad=False,
                                   quant_type="nf4", module=lin)._quantize("cpu")
    return torch.nn.Sequential(lin)


def _train_grad(model: Any, x: Any) -> Any:
    model.train()
    xi = x.clone().requires_grad_(True)
    model(xi).sum().backward()
    return xi.grad


HAS_AVX512BF16 = bnb_cpu.cpu_kernels().bnb_avx512bf16


def test_the_ci_log_line_names_the_cpu_path() -> None:
    k = bnb_cpu.cpu_kernels()
    assert k.torch_capability and f"has_avx512bf16={k.bnb_avx512bf16}" in k.line()


@pytest.mark.parametrize("out_features", [172, 688, 96])
@pytest.mark.parametrize("compute", ["float32", "bfloat16"])
def test_eval_forward_of_any_shape_runs_after_configure(out_features: int, compute: str) -> None:
    """The tiny recipe's old 688 (and the tests' 172) crashed with `N must be divisible by block_n` here."""
    dtype = getattr(torch, compute)
    model = _model(out_features, compute=dtype)
    policy = bnb_cpu.configure(model, training=False, compute_dtype=dtype)
    assert policy.layers == 1
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(3, 64))
    assert y.shape == (3, out_features) and torch.isfinite(y).all()
    packs = HAS_AVX512BF16 and compute == "bfloat16" and out_features % 32 == 0
    assert policy.packed_allowed == int(packs), policy.line()
    assert bool(getattr(model[0].weight.quant_state, "packing_format_for_cpu", False)) == packs


def test_training_keeps_gradients_through_base_layers_after_an_evaluation() -> None:
    x = torch.randn(4, 64)
    model = _model(128)
    bnb_cpu.configure(model, training=True, compute_dtype=torch.float32)
    before = _train_grad(model, x)
    model.eval()
    with torch.no_grad():
        model(x)  # what the Trainer's evaluation does between steps
    after = _train_grad(model, x)
    assert after is not None
    torch.testing.assert_close(after, before)


@pytest.mark.skipif(not HAS_AVX512BF16, reason="this CPU has no AVX-512 BF16: bitsandbytes never packs here")
def test_without_the_policy_an_evaluation_silently_stops_gradients_here() -> None:
    """Why training never uses the packed kernel: bitsandbytes' own default drops the input gradient."""
    x = torch.randn(4, 64)
    model = _model(128)
    assert _train_grad(model, x) is not None
    model.eval()
    with torch.no_grad():
        model(x)
    with pytest.warns(UserWarning, match="autograd kernel was not registered"):
        assert _train_grad(model, x) is None


def test_the_other_kind_of_cpu_takes_the_reference_path() -> None:
    """What a CPU without AVX-512 BF16 runs (bitsandbytes sets this attribute from has_avx512bf16())."""
    model = _model(128, compute=torch.bfloat16)
    model[0].support_avx512bf16_for_cpu = False
    policy = bnb_cpu.configure(model, training=False, compute_dtype=torch.bfloat16)
    assert policy.packed_allowed == 0 and "no AVX-512 BF16" in policy.line()
    model.eval()
    with torch.no_grad():
        ref = model(torch.ones(2, 64))
    assert not getattr(model[0].weight.quant_state, "packing_format_for_cpu", False)
    assert torch.isfinite(ref).all()


def test_packable_rule_matches_bitsandbytes() -> None:
    assert bnb_cpu.packable(704, 256, 64) is None
    assert "multiple of 32" in (bnb_cpu.packable(688, 256, 64) or "")
    assert "block size 64" in (bnb_cpu.packable(128, 100, 64) or "")
    model = _model(172)
    assert [n for n, _ in bnb_cpu.unpackable_layers(model)] == ["0"]


def test_the_hub_kernel_warning_becomes_one_line() -> None:
    import logging

    bnb_cpu.quiet_hub_kernel()
    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    h = Keep()
    log.addHandler(h)
    try:
        log.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please ...", "untrusted")
        log.warning("something else")
    finally:
        log.removeHandler(h)
    assert [r.getMessage() for r in records] == ["something else"]
    assert bnb_cpu.hub_kernel_skipped() and "kernels-community" in bnb_cpu.HUB_KERNEL_NOTE
