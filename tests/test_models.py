"""csipose.models: WiFlow-STD presets, WiFlow's MM-Fi variant and the input adapters.

Parameter counts are asserted exactly against the published numbers (WiFlow's
paper and code, its MM-Fi variant, the upstream WiFlow-STD presets; docs/models.md)
and against closed-form per-component formulas for configurations nobody published.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from csipose.models import (  # noqa: E402
    PRESETS,
    WiFlowMMFi,
    WiFlowMMFiConfig,
    WiFlowSTD,
    WiFlowSTDConfig,
    build_pose_model,
    channels_time_shape,
    conv_strides,
    pose_loss,
    preset,
    to_channels_time,
)
from csipose.models.wiflow import DualAxialAttention, TemporalBlock  # noqa: E402

from reference import wiflow_axial_attention, wiflow_temporal_block  # noqa: E402

PUBLISHED = {"full": 2_225_042, "half": 843_834, "quarter": 338_600, "tiny": 56_290}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Section 1.10's per-component formulas (kernel 3; BN counts weight + bias).
def tcn_block_params(ci: int, co: int, g_in: int, g_out: int, pw: int) -> int:
    k = 3
    n = ci * (ci // g_in) * k + 2 * ci + co * (ci // pw) + 2 * co
    n += co * (co // g_out) * k + 2 * co + co * co + 2 * co
    return n + ((ci // pw) * co + 2 * co if ci != co else 0)


def conv_block_params(ci: int, co: int) -> int:
    return 3 * co * ci + co + 2 * (3 * co * co + co) + 6 * co + ci * co + 2 * co


def axial_axis_params(c: int, g: int) -> int:
    return 3 * c * c + 6 * c + 2 * g + 2 * c


def formula_params(cfg: WiFlowSTDConfig) -> int:
    total, ci = 0, cfg.in_channels
    for level, co in enumerate(cfg.tcn_channels):
        pw = cfg.input_pw_groups if level == 0 else 1
        total += tcn_block_params(ci, co, cfg.groups(ci), cfg.groups(co), pw)
        ci = co
    ci = cfg.conv_channels[0]
    total += conv_block_params(1, ci)
    for co in cfg.conv_channels:
        total += conv_block_params(ci, co)
        ci = co
    total += 2 * axial_axis_params(ci, cfg.attention_groups)
    m, d = max(ci // 2, 4), cfg.dims
    return total + 9 * m * ci + m + 2 * m + m * d + d + 2 * d


# --------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("name", PUBLISHED)
def test_preset_parameter_counts_are_the_published_ones(name):
    model = WiFlowSTD(preset(name))
    assert n_params(model) == PUBLISHED[name]
    assert formula_params(model.config) == PUBLISHED[name]


def test_full_model_parameters_per_component():
    model = WiFlowSTD()
    assert [n_params(b) for b in model.tcn.network] == [675_000, 746_180, 464_780, 249_380]
    assert n_params(model.tcn) == 2_135_340
    assert n_params(model.up) + n_params(model.residual_blocks) == 45_472
    assert n_params(model.attention) == 25_632
    assert n_params(model.decoder) == 18_598


def test_half_model_tcn_blocks_and_groups():
    model = WiFlowSTD(preset("half"))
    assert [n_params(b) for b in model.tcn.network] == [433_350, 198_630, 121_430, 67_330]
    # gcd(c, 20): 540 -> 20, 270 -> 10, 220 -> 20, 170 -> 10, 120 -> 20.
    groups = [(b.conv1_group.groups, b.conv2_group.groups) for b in model.tcn.network]
    assert groups == [(20, 10), (10, 20), (20, 10), (10, 20)]


def test_tiny_model_is_depthwise_with_grouped_input_pointwise():
    model = WiFlowSTD(preset("tiny"))
    first = model.tcn.network[0]
    assert first.conv1_group.groups == 540 and first.conv2_group.groups == 68
    assert first.conv1_pw.groups == 4 and first.downsample[0].groups == 4
    assert all(b.conv1_pw.groups == 1 for b in model.tcn.network[1:])


@pytest.mark.parametrize(
    "name,overrides",
    [
        ("half", dict(in_channels=342)),
        ("quarter", dict(in_channels=342, dims=3, keypoints=17)),
        ("tiny", dict(in_channels=342, input_pw_groups=2)),
        ("full", dict(in_channels=60, tcn_channels=(40, 20), conv_channels=(4, 8), dims=1)),
        ("full", dict(groups_mode="gcd", tcn_groups=6, tcn_channels=(100, 36))),
    ],
)
def test_parameter_count_follows_the_formulas_for_other_plans(name, overrides):
    model = WiFlowSTD(preset(name, **overrides))
    assert n_params(model) == formula_params(model.config)


def test_keypoints_and_window_cost_no_parameters():
    base = n_params(WiFlowSTD())
    assert n_params(WiFlowSTD(preset("full", keypoints=17, window=40))) == base
    # D = 3: the last 1x1 conv gains 32 weights + 1 bias, its BN 2 parameters.
    assert n_params(WiFlowSTD(preset("full", dims=3))) == base + 35


def test_mmfi_variant_parameter_count():
    model = WiFlowMMFi()
    assert n_params(model) == 1_060_597
    assert n_params(model.tcn) == 908_370
    assert n_params(model.tcn_proj) == 78_880
    assert n_params(model.up) + n_params(model.residual_blocks) == 45_472
    assert n_params(model.att) == 25_632
    assert n_params(model.final_conv) == 2_243
    assert {b.conv1_group.groups for b in model.tcn.network} == {18}


# --------------------------------------------------------------- structure


@pytest.mark.parametrize(
    "width,blocks,min_width,strides,final",
    [
        (240, 4, 15, (2, 2, 2, 2), 15),
        (120, 4, 15, (2, 2, 2, 1), 15),
        (60, 4, 15, (2, 2, 1, 1), 15),
        (32, 4, 15, (2, 1, 1, 1), 16),
        (29, 4, 15, (2, 1, 1, 1), 15),  # ceil(29 / 2) = 15 still counts
        (28, 4, 15, (1, 1, 1, 1), 28),  # 14 < 15: never halve
        (14, 2, 15, (1, 1), 14),
        (31, 3, 4, (2, 2, 2), 4),
    ],
)
def test_width_stride_rule(width, blocks, min_width, strides, final):
    assert conv_strides(width, blocks, min_width) == (strides, final)


@pytest.mark.parametrize(
    "name,strides,width",
    [
        ("full", (2, 2, 2, 2), 15),
        ("half", (2, 2, 2, 1), 15),
        ("quarter", (2, 2, 1, 1), 15),
        ("tiny", (2, 1, 1, 1), 16),
    ],
)
def test_preset_strides_and_feature_map(name, strides, width):
    model = WiFlowSTD(preset(name)).eval()
    assert model.config.strides == strides
    assert tuple(b.block[0].stride[1] for b in model.residual_blocks) == strides
    seen = {}

    def record(module, inputs):
        seen["shape"] = inputs[0].shape

    model.attention.register_forward_pre_hook(record)
    with torch.no_grad():
        model(torch.rand(1, 540, 20))
    assert seen["shape"] == (1, model.config.conv_channels[-1], width, 20)


@pytest.mark.parametrize(
    "name,in_channels,window,keypoints,dims",
    [
        ("wiflow-full", 540, 20, 15, 2),
        ("wiflow-full", 540, 12, 17, 3),
        ("wiflow-half", 342, 10, 17, 3),
        ("wiflow-quarter", 342, 30, 17, 3),
        ("wiflow-quarter", 90, 7, 1, 1),
        ("wiflow-tiny", 540, 20, 17, 2),
        ("wiflow-mmfi", 342, 10, 17, 3),
        ("wiflow-mmfi", 342, 40, 17, 3),
        ("wiflow-mmfi", 540, 20, 15, 2),
    ],
)
def test_output_shapes(name, in_channels, window, keypoints, dims):
    model = build_pose_model(
        name, in_channels=in_channels, window=window, keypoints=keypoints, dims=dims
    ).eval()
    with torch.no_grad():
        out = model(torch.rand(3, in_channels, window))
    assert out.shape == (3, keypoints, dims)
    assert torch.isfinite(out).all()


def test_wrong_input_shape_raises():
    model = WiFlowSTD(preset("tiny"))
    with pytest.raises(
        ValueError, match=r"expected a CSI window \[B, 540, 20\], got \[2, 540, 19\]"
    ):
        model(torch.rand(2, 540, 19))
    with pytest.raises(ValueError, match=r"\[B, 342, 10\]"):
        WiFlowMMFi()(torch.rand(2, 540, 10))


def test_mmfi_frame_input_is_the_adapter_layout():
    model = WiFlowMMFi().eval()
    frames = torch.rand(2, 3, 114, 10)
    with torch.no_grad():
        direct = model(frames)
        adapted = model(to_channels_time(frames[:, None]))
    assert direct.shape == (2, 17, 3)
    torch.testing.assert_close(direct, adapted, rtol=0, atol=0)


# --------------------------------------------------------------- causality


def tcn_causality_gaps(tcn: nn.Module, channels: int, t0: int) -> tuple[float, float, float]:
    """Largest change of outputs <= t0 when inputs after t0 change, of outputs
    after t0, and of output t0 when input t0 changes."""
    g = torch.Generator().manual_seed(t0)
    x = torch.rand(2, channels, 20, generator=g)
    future = x.clone()
    future[..., t0 + 1 :] = torch.rand(future[..., t0 + 1 :].shape, generator=g)
    present = x.clone()
    present[..., t0] += 1.0
    with torch.no_grad():
        y, yf, yp = tcn(x), tcn(future), tcn(present)
    past = (y[..., : t0 + 1] - yf[..., : t0 + 1]).abs().max().item()
    later = (y[..., t0 + 1 :] - yf[..., t0 + 1 :]).abs().max().item() if t0 < 19 else 1.0
    return past, later, (y[..., t0] - yp[..., t0]).abs().max().item()


@pytest.mark.parametrize("t0", [0, 5, 13, 18])
def test_tcn_is_causal(t0):
    for tcn, channels in [
        (WiFlowSTD(preset("quarter")).tcn, 540),
        (WiFlowMMFi().tcn, 342),
    ]:
        past, later, present = tcn_causality_gaps(tcn.eval(), channels, t0)
        assert past <= 1e-6, "an output depends on a later input"
        assert later > 1e-3 and present > 1e-3, "the probe does not move the outputs"


def test_left_padding_equals_upstream_pad_and_chomp():
    block = WiFlowSTD(preset("quarter")).tcn.network[2]  # dilation 4
    conv, pad = block.conv2_group, block.pad
    x = torch.rand(2, conv.in_channels, 20)
    upstream = F.conv1d(x, conv.weight, padding=pad, dilation=conv.dilation, groups=conv.groups)[
        ..., :-pad
    ]
    torch.testing.assert_close(conv(F.pad(x, (pad, 0))), upstream)


def randomise_batchnorm(model: nn.Module) -> None:
    """Running statistics and affine parameters away from the identity."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for t in (m.running_mean, m.weight, m.bias):
                t.data.normal_()
            m.running_var.data.uniform_(0.5, 2.0)


def bn_dict(m: nn.Module) -> dict:
    return {
        "mean": m.running_mean.numpy(),
        "var": m.running_var.numpy(),
        "weight": m.weight.detach().numpy(),
        "bias": m.bias.detach().numpy(),
    }


def test_temporal_block_equals_oracle():
    torch.manual_seed(2)
    block = TemporalBlock(12, 8, 2, groups_in=4, groups_out=2, pw_groups=2, dropout=0.5)
    block = block.double().eval()
    randomise_batchnorm(block)
    p = {}
    for name, m in block.named_modules():
        if isinstance(m, nn.Conv1d):
            p[name] = m.weight.detach().numpy()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            p[name] = bn_dict(m)
    x = torch.randn(3, 12, 11, dtype=torch.float64)
    with torch.no_grad():
        got = block(x).numpy()
    for n in range(3):
        want = wiflow_temporal_block(x[n].numpy(), p, dilation=2, groups=(4, 2, 2))
        np.testing.assert_allclose(got[n], want, rtol=1e-10, atol=1e-12)


def test_dual_axial_attention_equals_oracle():
    torch.manual_seed(3)
    att = DualAxialAttention(8, 2).double().eval()
    randomise_batchnorm(att)

    def params(axis):
        w = axis.qkv_transform.weight.detach().numpy()[..., 0]
        return w, bn_dict(axis.bn_qkv), bn_dict(axis.bn_similarity), bn_dict(axis.bn_output)

    x = torch.randn(2, 8, 5, 7, dtype=torch.float64)  # [N, C, H = rows, W = time]
    with torch.no_grad():
        got = att(x).numpy()
    want = wiflow_axial_attention(x.numpy(), *params(att.width_axis), groups=2, width=True)
    want = wiflow_axial_attention(want, *params(att.height_axis), groups=2, width=False)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------- init, determinism, training


def test_initialisation_as_published():
    torch.manual_seed(0)
    model = WiFlowSTD()
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            fan_out = m.out_channels * m.kernel_size[0]
            if m.weight.numel() >= 10_000:  # enough draws to tell the stds apart
                assert m.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert (m.weight == 1).all() and (m.bias == 0).all()
        elif isinstance(m, nn.Conv2d):  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            assert m.weight.abs().max().item() <= fan_in**-0.5
    # The attention's own N(0, 1/C) draw (std 0.125) is overwritten: Kaiming fan_out 192.
    qkv = model.attention.width_axis.qkv_transform.weight
    assert qkv.std().item() == pytest.approx((2 / 192) ** 0.5, rel=0.05)


@pytest.mark.parametrize("name", ["wiflow-quarter", "wiflow-mmfi"])
def test_seeded_build_and_eval_are_deterministic(name):
    def build() -> nn.Module:
        torch.manual_seed(7)
        return build_pose_model(name, in_channels=342, window=10, keypoints=17, dims=3)

    a, b = build(), build()
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(2, 342, 10)
    a.eval()
    with torch.no_grad():
        assert torch.equal(a(x), a(x))
        a.train()
        assert not torch.equal(a(x), a(x))  # dropout is live in training mode


@pytest.mark.parametrize("name", ["wiflow-full", "wiflow-half", "wiflow-quarter", "wiflow-tiny"])
def test_forward_backward_wiflow(name):
    model = build_pose_model(name, in_channels=540, window=20, keypoints=15, dims=2)
    out = model(torch.rand(2, 540, 20))
    pose_loss(out, torch.rand(2, 15, 2), "body25_15").backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert sum(int((p.grad != 0).any()) for p in model.parameters()) >= 0.9 * len(
        list(model.parameters())
    )


def test_forward_backward_mmfi():
    model = build_pose_model("wiflow-mmfi", in_channels=342, window=10, keypoints=17, dims=3)
    out = model(torch.rand(2, 342, 10))
    pose_loss(out, torch.randn(2, 17, 3), "h36m17").backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


def test_output_activation_bounds_the_published_head():
    x = torch.rand(2, 540, 20)
    for flag, low in [(True, -0.2785), (False, -4.0)]:
        model = WiFlowSTD(preset("tiny", output_activation=flag)).eval()
        with torch.no_grad():
            model.decoder[4].bias.fill_(-5.0)
            out = model(x)
        assert (out >= -0.2785).all() if flag else (out < low).all()


# --------------------------------------------------------------- adapters and factory


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_to_channels_time_element_order(kind):
    b, frames, antennas, subcarriers, packets = 2, 3, 2, 4, 5
    x = (
        np.random.default_rng(0)
        .random((b, frames, antennas, subcarriers, packets))
        .astype(np.float32)
    )
    got = to_channels_time(x if kind == "numpy" else torch.from_numpy(x))
    got = np.asarray(got)
    assert got.shape == (b, antennas * subcarriers, frames * packets)
    assert got.flags.c_contiguous
    for i in range(b):
        for f in range(frames):
            for a in range(antennas):
                for s in range(subcarriers):
                    for p in range(packets):
                        assert got[i, a * subcarriers + s, f * packets + p] == x[i, f, a, s, p]


def test_to_channels_time_profiles():
    mmfi = np.random.default_rng(1).random((2, 3, 3, 114, 10)).astype(np.float32)
    assert to_channels_time(mmfi).shape == (2, 342, 30)
    # One MM-Fi frame: exactly WiFlow's reshape of [B, 3, 114, 10] to [B, 342, 10].
    np.testing.assert_array_equal(to_channels_time(mmfi[:, :1]), mmfi[:, 0].reshape(2, 342, 10))
    wiflow = torch.rand(2, 20, 18, 30, 1)
    out = to_channels_time(wiflow)
    assert out.shape == (2, 540, 20)
    torch.testing.assert_close(out[:, 30 * 7 + 11, 9], wiflow[:, 9, 7, 11, 0])
    assert channels_time_shape((20, 18, 30, 1)) == (540, 20)
    assert channels_time_shape((4, 3, 114, 10)) == (342, 40)
    with pytest.raises(ValueError, match=r"\[B, L, A, S, P\]"):
        to_channels_time(np.zeros((2, 342, 10)))


@pytest.mark.parametrize(
    "name,cls,in_channels,window,keypoints,dims,count",
    [
        ("wiflow-full", WiFlowSTD, 540, 20, 15, 2, 2_225_042),
        ("wiflow-half", WiFlowSTD, 540, 20, 15, 2, 843_834),
        ("wiflow-quarter", WiFlowSTD, 540, 20, 15, 2, 338_600),
        ("wiflow-tiny", WiFlowSTD, 540, 20, 15, 2, 56_290),
        ("wiflow-mmfi", WiFlowMMFi, 342, 10, 17, 3, 1_060_597),
    ],
)
def test_build_pose_model(name, cls, in_channels, window, keypoints, dims, count):
    model = build_pose_model(
        name, in_channels=in_channels, window=window, keypoints=keypoints, dims=dims
    )
    assert type(model) is cls
    assert n_params(model) == count
    assert model.config.dropout == (0.3 if name == "wiflow-mmfi" else 0.5)
    tuned = build_pose_model(
        name, in_channels=in_channels, window=window, keypoints=keypoints, dims=dims, dropout=0.1
    )
    assert tuned.config.dropout == 0.1
    assert {m.p for m in tuned.tcn.modules() if isinstance(m, nn.Dropout)} == {0.1}


@pytest.mark.parametrize(
    "name,in_channels,message",
    [
        (
            "wiflow-full",
            342,
            "in_channels 342 are not divisible by the TCN's groups 20 \\(groups_mode 'fixed'",
        ),
        ("wiflow-tiny", 342, "input_pw_groups 4 must divide both in_channels 342 and tcn_channels"),
        (
            "wiflow-mmfi",
            100,
            "in_channels 100 are not divisible by the TCN's groups 18 \\(WiFlow's MM-Fi",
        ),
        ("wiflow-huge", 540, "unknown pose model 'wiflow-huge'"),
    ],
)
def test_build_pose_model_names_the_broken_constraint(name, in_channels, message):
    with pytest.raises(ValueError, match=message):
        build_pose_model(name, in_channels=in_channels, window=20, keypoints=15, dims=2)


def test_config_validation():
    with pytest.raises(
        ValueError, match="tcn channels 270 are not divisible by the TCN's groups 20"
    ):
        preset("half", groups_mode="fixed")
    with pytest.raises(
        ValueError, match="attention_groups 3 must divide the last conv channels 64"
    ):
        WiFlowSTDConfig(attention_groups=3)
    with pytest.raises(ValueError, match="dropout must be in"):
        WiFlowMMFiConfig(dropout=1.0)
    with pytest.raises(ValueError, match="keypoints must be a positive integer"):
        WiFlowSTDConfig(keypoints=0)
    with pytest.raises(ValueError, match="unknown WiFlow-STD preset"):
        preset("huge")
    assert set(PRESETS) == {"full", "half", "quarter", "tiny"}


def test_import_csipose_does_not_import_torch():
    code = "import sys, csipose, csipose.metrics, csipose.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
