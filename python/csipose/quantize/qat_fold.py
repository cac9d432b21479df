"""Fold BatchNorm into the float32 convs of a converted QAT graph.

``prepare_qat_pt2e`` rewrites every conv-BN pair into its QAT pattern (conv on
``w * k`` with ``k = gamma / sqrt(var + eps)``, then ``/ k``, ``+ b``, BatchNorm)
whether or not the conv is quantized, and ``convert_pt2e`` folds only the
quantized patterns back (torchao 0.18). The convs that stay float32 (the Conv2d
stem and decoder, :mod:`csipose.quantize.int8_scope`) therefore reached ONNX as
Conv -> Div -> Add -> BatchNormalization, which PTQ's graph does not have and
onnxruntime does not fuse. In eval mode the pattern is ``conv(x, w * k) + beta +
(b - mean) * k``: one conv with the weight the pattern computes (the same float
ops, so the same values) and a folded bias.
"""

from __future__ import annotations

import functools

import torch

_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
_BN = torch.ops.aten.batch_norm.default


def fold_float_conv_bn(gm: torch.fx.GraphModule) -> int:
    """Fold every eval-mode float QAT conv-BN pattern of ``gm`` in place; returns how
    many were folded. Anything that does not match exactly is left as it is."""
    folded = 0
    for conv in list(gm.graph.nodes):
        if conv.op == "call_function" and conv.target in _CONVS:
            folded += _fold_one(gm, conv, folded)
    if folded:
        gm.graph.eliminate_dead_code()
        gm.recompile()
    return folded


def _fold_one(gm: torch.fx.GraphModule, conv: torch.fx.Node, i: int) -> int:
    chain = _chain(conv)
    if chain is None or len(conv.args) < 2:
        return 0
    div, add, bn = chain
    weight = conv.args[1]
    if not (isinstance(weight, torch.fx.Node) and weight.target == torch.ops.aten.mul.Tensor):
        return 0  # a quantized conv (its weight is dequantized) is torchao's to fold
    w = _constant(gm, weight.args[0])
    gamma, beta, mean, var = (_constant(gm, a) for a in bn.args[1:5])
    eps = bn.args[7]
    b = _constant(gm, _reshaped(add.args[1])) if add is not None else None
    if w is None or gamma is None or beta is None or mean is None or var is None:
        return 0
    if (add is not None and b is None) or not isinstance(eps, float):
        return 0
    with torch.no_grad():
        k = gamma / torch.sqrt(var + eps)  # the pattern's own scale factor, same ops
        folded_w = w * k.reshape(-1, *([1] * (w.dim() - 1)))
        bias = beta + ((b if b is not None else torch.zeros_like(mean)) - mean) * k
    nodes = []
    for what, t in (("weight", folded_w), ("bias", bias)):
        name = f"_qat_folded_{what}_{i}"
        gm.register_buffer(name, t.detach().clone())
        with gm.graph.inserting_before(conv):
            nodes.append(gm.graph.get_attr(name))
    conv.args = (conv.args[0], *nodes, *conv.args[3:])
    bn.replace_all_uses_with(conv)
    for node in (bn, add, div):
        if node is not None and not node.users:
            gm.graph.erase_node(node)
    return 1


def _chain(conv: torch.fx.Node) -> tuple[torch.fx.Node, torch.fx.Node | None, torch.fx.Node] | None:
    """conv -> div (by k) [-> add (conv bias)] -> batch_norm in eval mode, each with one user."""
    div = _only_user(conv)
    if div is None or div.target != torch.ops.aten.div.Tensor or div.args[0] is not conv:
        return None
    nxt = _only_user(div)
    add = None
    if nxt is not None and nxt.target == torch.ops.aten.add.Tensor and nxt.args[0] is div:
        add, nxt = nxt, _only_user(nxt)
    if nxt is None or nxt.target != _BN or nxt.args[5] is not False or len(nxt.args) < 8:
        return None
    if len(nxt.args[1:5]) != 4:
        return None
    return div, add, nxt


def _only_user(node: torch.fx.Node) -> torch.fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 and users[0].op == "call_function" else None


def _reshaped(node: object) -> object:
    """The tensor under a reshape (the pattern reshapes the conv bias to [1, C, 1...])."""
    if isinstance(node, torch.fx.Node) and node.target == torch.ops.aten.reshape.default:
        return node.args[0]
    return node


def _constant(gm: torch.fx.GraphModule, node: object) -> torch.Tensor | None:
    if not (isinstance(node, torch.fx.Node) and node.op == "get_attr"):
        return None
    try:
        value = functools.reduce(getattr, str(node.target).split("."), gm)
    except AttributeError:
        return None
    return value.detach() if isinstance(value, torch.Tensor) else None
