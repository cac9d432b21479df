"""The temporal pose model: causal, its stream equals the full pass, it starts as
the frame model, and its state_dict names are the contract with the Rust loader."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from csipose.models import build_pose_model
from csipose.models.temporal import TemporalPoseModel
from csipose.nn import SparsePattern

C, W, K, D = 24, 10, 5, 3

PATTERNS = [
    SparsePattern(),  # the upstream head: window 32, blocks of 16, token 0, log-stride
    SparsePattern(window=3, block=4),  # landmarks and log-stride links inside T = 40
    SparsePattern(window=2, block=0, landmarks=False, globals=(), log_stride=False),
]


def frame_model() -> torch.nn.Module:
    return build_pose_model("wiflow-tiny", in_channels=C, window=W, keypoints=K, dims=D,
                            input_pw_groups=2, output_activation=False)  # fmt: skip


def model(pattern: SparsePattern, seed: int = 0, *, zero_head: bool = False) -> TemporalPoseModel:
    torch.manual_seed(seed)
    m = TemporalPoseModel(frame_model(), K, D, dim=16, q_heads=4, kv_heads=2, head_dim=8,
                          pattern=pattern)  # fmt: skip
    if not zero_head:  # a trained-looking head, so the attention path reaches the output
        torch.nn.init.normal_(m.head.weight, std=0.5)
        torch.nn.init.normal_(m.head.bias, std=0.5)
    # Running statistics that are not the identity, as after training.
    for mod in m.frame.modules():
        if isinstance(mod, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


@settings(max_examples=15, deadline=None)
@given(pi=st.integers(0, len(PATTERNS) - 1), t=st.integers(1, 40), data=st.data())
def test_the_model_is_causal(pi, t, data):
    """Changing windows after t never changes the output at t."""
    cut = data.draw(st.integers(0, t - 1))
    m = model(PATTERNS[pi])
    g = torch.Generator().manual_seed(t)
    x = torch.randn(2, t, C, W, generator=g)
    y = x.clone()
    y[:, cut + 1 :] = torch.randn(2, t - cut - 1, C, W, generator=g) * 3
    with torch.no_grad():
        a, b = m(x), m(y)
    torch.testing.assert_close(a[:, : cut + 1], b[:, : cut + 1], rtol=1e-5, atol=1e-5)
    if cut + 1 < t:  # the later outputs do see the change
        assert not torch.allclose(a[:, cut + 1 :], b[:, cut + 1 :])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_stream_equals_the_full_causal_pass(pattern):
    m = model(pattern, seed=1)
    x = torch.randn(3, 45, C, W, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = m(x)
    s = m.stream(batch=3)
    rows = [s.step(x[:, i]) for i in range(x.shape[1])]
    assert s.t == 45
    torch.testing.assert_close(torch.stack(rows, dim=1), full, rtol=1e-5, atol=1e-5)


def test_at_initialisation_the_model_is_the_frame_model():
    m = model(SparsePattern(), zero_head=True)
    assert not m.head.weight.any() and not m.head.bias.any()
    x = torch.randn(2, 7, C, W)
    with torch.no_grad():
        out = m(x)
        frames = m.frame(x.flatten(0, 1)).reshape(2, 7, K, D)
    assert torch.equal(out, frames)


def test_the_attention_projections_get_gradients():
    """Upstream's projections never learned (host copies); here every parameter of the
    temporal block gets a gradient once the head is non-zero."""
    m = model(SparsePattern(window=3, block=4)).train()
    m(torch.randn(2, 20, C, W)).square().mean().backward()
    for name, p in m.named_parameters():
        if not name.startswith("frame."):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_state_dict_names_are_the_contract():
    names = {k for k in model(SparsePattern()).state_dict() if not k.startswith("frame.")}
    layers = "embed norm1 attn.q_proj attn.k_proj attn.v_proj attn.o_proj norm2 mlp.0 mlp.2 head"
    assert names == {f"{layer}.{p}" for layer in layers.split() for p in ("weight", "bias")}
    m = model(SparsePattern())
    assert m.embed.in_features == K * D and m.head.out_features == K * D
    assert m.norm1.eps == 1e-5 and m.norm2.eps == 1e-5


def test_a_bidirectional_pattern_is_refused():
    with pytest.raises(ValueError, match="causal"):
        TemporalPoseModel(frame_model(), K, D, pattern=SparsePattern(causal=False))


def test_bad_shapes_are_value_errors():
    m = model(SparsePattern())
    with pytest.raises(ValueError, match=r"\[B, T, C, W\]"):
        m(torch.randn(4, C, W))
    s = m.stream(batch=2)
    with pytest.raises(ValueError, match=r"\[2, C, W\]"):
        s.step(torch.randn(3, C, W))
    with pytest.raises(ValueError, match=r"\[2, C, W\]"):
        s.step(torch.randn(2, 1, C, W))
