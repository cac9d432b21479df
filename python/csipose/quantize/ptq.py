"""int8 post-training quantization through PT2E (torchao).

``torch.export`` -> ``X86InductorQuantizer`` (per-channel symmetric int8
weights, per-tensor affine uint8 activations from a histogram observer) ->
``prepare_pt2e`` -> calibration on windows of the run's training part ->
``convert_pt2e``. The result is torch's reference Q/DQ graph: fp32 math between
QuantizeLinear/DequantizeLinear pairs, which exports to QDQ ONNX.

Activations use all 8 bits. ``reduce_range=True`` restricts them to 7 bits (the
old fbgemm/x86 default, a workaround for CPUs without VNNI whose int16
accumulation can saturate); it was the main accuracy loss of the upstream's
int8 attempt (reference/quant-onnx-perf-anchors.md section 3), so it is only
an option.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator, Sequence

import torch

from csipose.quantize import int8_scope

MAX_BATCH = 4096
_CONVS = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
_TO_BATCH_NORM = (
    torch.ops.aten.div.Tensor,
    torch.ops.aten.add.Tensor,
    torch.ops.aten.batch_norm.default,
)


def quantizer(*, reduce_range: bool = False, is_qat: bool = False, skip: Sequence[str] = (),
              only: Sequence[str] | None = None, conv_outputs: bool = False):  # fmt: skip
    """The x86 PT2E quantizer, extended to every Conv1d; modules named in ``skip``
    stay float32, and with ``only`` nothing but the named modules is quantized.
    ``conv_outputs`` also quantizes every quantized conv's own output (before its
    activation): see :mod:`csipose.quantize.int8_scope`."""
    from torchao.quantization.pt2e.quantizer import get_output_act_qspec
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    config = get_default_x86_inductor_quantization_config(is_qat=is_qat, reduce_range=reduce_range)

    def wanted(node: torch.fx.Node) -> bool:
        stack = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]

        def inside(name: str) -> bool:
            return any(p == name or p.startswith(name + ".") for p in stack)

        if any(inside(n) for n in skip):
            return False
        return only is None or any(inside(n) for n in only)

    class Quantizer(X86InductorQuantizer):
        """X86InductorQuantizer annotates Conv1d only when a ReLU follows it (torchao
        0.18); WiFlow's temporal blocks are Conv1d + BN + SiLU, so without this the
        whole TCN, most of the weights, would stay float32. The extra convs get the
        quantizer's own conv annotation (int8 per-channel weights, uint8 input)."""

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            for node in model.graph.nodes:
                if (node.op == "call_function" and node.target == torch.ops.aten.conv1d.default
                        and "quantization_annotation" not in node.meta and wanted(node)):  # fmt: skip
                    self._annotate_conv_node_helper(node, False, config)
            if conv_outputs:
                for node in model.graph.nodes:
                    ann = node.meta.get("quantization_annotation")
                    if (node.op == "call_function" and node.target in _CONVS and ann is not None
                            and ann.input_qspec_map):  # fmt: skip
                        _quantize_output(_after_batch_norm(node), get_output_act_qspec(config))
            return model

    q = Quantizer().set_global(None if only is not None else config)
    for name in only or ():
        q.set_module_name_qconfig(name, config)
    for name in skip:
        q.set_module_name_qconfig(name, None)
    return q


def _after_batch_norm(conv: torch.fx.Node) -> torch.fx.Node:
    """Where a conv's output is: after its BatchNorm when one follows. prepare_pt2e has
    folded BN into the conv already; prepare_qat_pt2e keeps conv -> BN until
    convert, and a quantizer between them would quantize the pre-BN values (the
    fold after it would not match either)."""
    node = conv
    for _ in range(3):  # QAT's conv-BN pattern: conv -> div (weight scale) [-> add (bias)] -> BN
        users = list(node.users)
        if len(users) != 1 or users[0].target not in _TO_BATCH_NORM:
            return conv
        node = users[0]
        if node.target == torch.ops.aten.batch_norm.default:
            return node
    return conv


def _quantize_output(node: torch.fx.Node, qspec: object) -> None:
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    ann = node.meta.get("quantization_annotation")
    if ann is None:
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            output_qspec=qspec,
            _annotated=True,
        )
    elif ann.output_qspec is None:
        ann.output_qspec = qspec


def export(model: torch.nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """The model as an exported graph with a dynamic batch axis (batch 1 allowed)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (example[:2],), dynamic_shapes=({0: batch},))
    return ep.module()


def calibrate(prepared: torch.fx.GraphModule, batches: Iterable[torch.Tensor]) -> None:
    with torch.no_grad():
        for x in batches:
            prepared(x)


@contextlib.contextmanager
def _no_qat_fold() -> Iterator[None]:
    """Skip convert_pt2e's conv-BN QAT fold for post-training graphs: it looks for
    the fake-quant conv-BN patterns that only prepare_qat_pt2e inserts (prepare_pt2e
    folds BN into conv already), and building its ~50 pattern graphs costs about
    35 s of CPU whatever the model (torchao 0.18)."""
    from torchao.quantization.pt2e import quantize_pt2e

    original = quantize_pt2e._fold_conv_bn_qat
    quantize_pt2e._fold_conv_bn_qat = lambda m: m
    try:
        yield
    finally:
        quantize_pt2e._fold_conv_bn_qat = original


def convert(prepared: torch.fx.GraphModule, *, qat: bool = False) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with warnings.catch_warnings(), contextlib.nullcontext() if qat else _no_qat_fold():
        warnings.simplefilter("ignore")
        return convert_pt2e(prepared)


def ptq(model: torch.nn.Module, calibration: torch.Tensor, *, batch_size: int = 64,
        reduce_range: bool = False, skip: Sequence[str] = (), only: Sequence[str] | None = None,
        every_layer: bool = False, conv_outputs: bool = True,
        exported: torch.fx.GraphModule | None = None) -> torch.fx.GraphModule:  # fmt: skip
    """The converted int8 reference graph of ``model`` calibrated on ``calibration``
    [N, C, T]. ``exported`` (from :func:`export`) saves re-tracing when one model is
    quantized several ways.

    By default the int8 layers are :func:`int8_scope.fast_int8_modules` (minus
    ``skip``) with their outputs quantized, the graph onnxruntime runs as int8;
    ``only`` names the int8 modules instead; ``every_layer=True`` is the x86
    quantizer's own choice (every conv, outputs after the activation)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    if len(calibration) == 0:
        raise ValueError("calibration needs at least one window")
    if only is None and not every_layer:
        only = int8_scope.fast_int8_modules(model, skip)
    graph = copy.deepcopy(exported) if exported is not None else export(model.eval(), calibration)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_pt2e(
            graph,
            quantizer(reduce_range=reduce_range, skip=skip, only=only, conv_outputs=conv_outputs),
        )
    calibrate(prepared, calibration.split(batch_size))
    return convert(prepared)
