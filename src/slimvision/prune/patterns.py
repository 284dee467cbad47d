"""What torch-pruning is told about a model, and the patterns it cannot slice safely.

torch-pruning follows channels through the autograd graph, but some forward code fixes a channel
count in Python: `x.split([1, d, d])`, a reshape into heads, a channel shuffle. Pruning through
such an op leaves a model that no longer runs. This module

- finds the attention blocks (a fused `qkv` Linear next to a `num_heads` attribute) so their
  channels are removed per head, and rewrites `num_heads`/`head_dim` afterwards;
- lists the bare parameters (LayerScale gamma, cls_token, pos_embed) with their channel dim;
- wraps the importance so a group that flows through a split or a reshape torch-pruning could not
  map keeps its channels (the group is skipped, recorded with its reason);
- stops torch-pruning's group search at those ops (`cut_unsliceable_ops`), since the group is kept
  whole anyway and following a reshape into heads can take hours (see `regroups_channels`);
- finds, after pruning, the layer whose forward failed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn as nn
import torch_pruning as tp
from torch.overrides import TorchFunctionMode
from torch_pruning.dependency import index_mapping

# Leaf modules whose parameters torch-pruning slices itself (subclasses included).
SLICED_TYPES = (
    nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm, nn.PReLU, nn.Embedding, nn.MultiheadAttention, nn.LSTM,
)


def _unmappable_reshape_tolerant(original):
    """torch-pruning's reshape index mapping, made to mark (not crash on) a reshape it cannot map."""

    def update(graph, node):
        try:
            original(graph, node)
        except ZeroDivisionError:  # e.g. the view(b, groups, c // groups, h, w) of a channel shuffle
            node.slimvision_unmapped = True

    update.slimvision_wrapped = True
    return update


if not getattr(index_mapping.update_reshape_index_mapping, "slimvision_wrapped", False):
    index_mapping.update_reshape_index_mapping = _unmappable_reshape_tolerant(index_mapping.update_reshape_index_mapping)


RECORDED = "slimvision_recorded"  # key in an autograd node's metadata: (input shape, output shape(s))


class _ReshapeShapeRecorder(TorchFunctionMode):
    """Writes the input and output shapes of every view/reshape/split onto the autograd node it creates.

    torch-pruning sees a reshape only as an autograd node; its own check of the shapes reads
    `grad_fn._saved_self_sizes`, which PyTorch 2 no longer has, so every reshape between layers of
    different widths is mapped as a flatten. The shapes recorded here tell the reshapes apart, and
    mark the graphs traced for `prune` (other users of torch-pruning's graph, e.g. CHEX, are not cut).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not args or not isinstance(args[0], torch.Tensor):
            return out
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        grad_fn = getattr(outputs[0], "grad_fn", None) if outputs and isinstance(outputs[0], torch.Tensor) else None
        if grad_fn is not None and any(word in grad_fn.name().lower() for word in ("view", "reshape", "split")):
            # the grad_fns torch-pruning turns into reshape and split nodes
            shapes = tuple(tuple(o.shape) for o in outputs if isinstance(o, torch.Tensor))
            grad_fn.metadata.setdefault(RECORDED, (tuple(args[0].shape), shapes[0] if len(shapes) == 1 else shapes))
        return out


def traced_forward(model: nn.Module, example_inputs: torch.Tensor) -> torch.Tensor:
    """The forward pass torch-pruning traces (its `forward_fn`), with reshape shapes recorded."""
    with _ReshapeShapeRecorder():
        return model(example_inputs)


def regroups_channels(shapes: tuple[tuple[int, ...], tuple[int, ...]] | None) -> bool:
    """True if a reshape (input shape, output shape) moves the channels of a [B, C, H, W] tensor out of dim 1.

    E.g. [B, heads * d, H, W] -> [B, heads, d, H * W] (conv attention) or the way back, or the
    view of a channel shuffle. Keeping C as dim 1 (flattening or splitting H and W) and flattening
    [B, C, H, W] whole into [B, C * H * W] (before a Linear) are what torch-pruning can map, and so
    is adding or dropping dims of size 1 (LayerScale's gamma.view(1, -1, 1, 1)).
    """
    if shapes is None:
        return False
    if [size for size in shapes[0] if size != 1] == [size for size in shapes[1] if size != 1]:
        return False
    for conv, other in (shapes, shapes[::-1]):
        if len(conv) == 4:
            batch, channels, height, width = conv
            if tuple(other[:2]) != (batch, channels) and tuple(other) != (batch, channels * height * width):
                return True
    return False


def _no_channels(idxs):
    """An index mapping that maps every channel to none: torch-pruning stops following the dependency."""
    return []


def _recorded_shapes(node):
    """(input shape, output shape(s)) `traced_forward` recorded for `node`, or None."""
    metadata = getattr(node.grad_fn, "metadata", None)
    return metadata.get(RECORDED) if metadata else None


def _fixed_channel_reason(node) -> str | None:
    """Why torch-pruning cannot slice channels through `node` (a fixed-size split, a reshape that regroups channels)."""
    if node.type == tp.ops.OPTYPE.SPLIT:
        return "split into fixed sizes"
    if node.type == tp.ops.OPTYPE.RESHAPE and regroups_channels(_recorded_shapes(node)):
        return "reshape that regroups channels (e.g. into attention heads)"
    return None


def cut_unsliceable_ops(graph) -> None:
    """Make torch-pruning's group search stop at every op whose channels we keep whole (splits into
    fixed sizes, reshapes that regroup channels): the group still reaches the op, so the guard sees it.
    Only ops traced through `traced_forward` are cut.

    Why: through a reshape into heads torch-pruning applies flatten index mappings (each channel
    becomes `stride` indices), and they chain along q -> matmul -> softmax -> matmul -> v, so the index
    lists multiply in length (the 32-channel q conv of a small test block ends with lists of 16,384
    indices, 82,944 with 48 channels); a node is also visited again whenever it is reached with a
    different index list, and each visit compares its list with every entry collected so far.
    EfficientFormerV2 did not finish one group search in an hour. A split [1, d, d] makes the walk
    revisit nodes too (MobileViTv2: thousands of revisits, seconds per group).
    """
    for node in graph.module2node.values():
        if _recorded_shapes(node) is not None and _fixed_channel_reason(node):
            for dep in node.dependencies:
                dep.index_mapping = [_no_channels, None]


def _cutting_unsliceable_ops(original):
    """torch-pruning's index mapping update, followed by `cut_unsliceable_ops`."""

    def update(graph):
        original(graph)
        cut_unsliceable_ops(graph)

    update.slimvision_wrapped = True
    return update


if not getattr(index_mapping.update_index_mapping, "slimvision_wrapped", False):
    # graph.py calls it as index_mapping.update_index_mapping, before every group search
    index_mapping.update_index_mapping = _cutting_unsliceable_ops(index_mapping.update_index_mapping)


@dataclass
class AttentionBlock:
    """A module that reshapes the output of its fused `qkv` Linear into `num_heads` heads."""

    module: nn.Module
    qkv: nn.Linear


def find_attention_blocks(model: nn.Module) -> list[AttentionBlock]:
    """Modules with an int `num_heads` and a `qkv` Linear (timm's Attention and look-alikes)."""
    blocks = []
    for module in model.modules():
        qkv = getattr(module, "qkv", None)
        if isinstance(getattr(module, "num_heads", None), int) and isinstance(qkv, nn.Linear) and qkv.out_features % 3 == 0:
            blocks.append(AttentionBlock(module, qkv))
    return blocks


def update_attention_attributes(blocks: list[AttentionBlock], num_heads: dict[nn.Module, int]) -> None:
    """After pruning: the head count torch-pruning kept and the head width the qkv output now has."""
    for block in blocks:
        heads = num_heads.get(block.qkv, block.module.num_heads)
        block.module.num_heads = heads
        head_dim = block.qkv.out_features // (3 * heads)
        if hasattr(block.module, "head_dim"):
            block.module.head_dim = head_dim
        if hasattr(block.module, "attn_dim"):
            block.module.attn_dim = heads * head_dim


def bare_parameters(model: nn.Module) -> list[tuple[nn.Parameter, int]]:
    """(parameter, channel dim) for parameters held by modules torch-pruning does not know (LayerScale, cls_token).

    The channel dim is the last one longer than 1: gamma [C] and [C, 1, 1] -> 0, tokens [1, N, D] -> 2,
    the same rule torch-pruning applies when it finds them itself (stated here to keep its log quiet).
    """
    found = []
    for module in model.modules():
        if isinstance(module, SLICED_TYPES):
            continue
        for param in module.parameters(recurse=False):
            dims = [i for i, size in enumerate(param.shape) if size > 1]
            if dims:
                found.append((param, dims[-1]))
    return found


def own_bare_parameters(modules: list[nn.Module]) -> list[nn.Parameter]:
    """The bare parameters inside `modules` (so ignoring a LayerScale block also keeps its gamma)."""
    sliced = {id(p) for m in modules for sub in m.modules() if isinstance(sub, SLICED_TYPES) for p in sub.parameters()}
    return [p for m in modules for p in m.parameters() if id(p) not in sliced]


def _fixed_channel_op(node) -> str | None:
    if getattr(node, "slimvision_unmapped", False):
        return "reshape that regroups channels (e.g. a channel shuffle)"
    return _fixed_channel_reason(node)


@dataclass
class KeptGroups:
    """Groups whose channels were kept because slicing them would break the forward pass."""

    reasons: dict[str, str] = field(default_factory=dict)  # root layer name -> why

    def describe(self) -> list[str]:
        return [f"{name}: {why}" for name, why in sorted(self.reasons.items())]


class GuardedImportance(tp.importance.Importance):
    """The criterion's importance, except that a group torch-pruning cannot slice safely is skipped.

    torch-pruning skips a group whose importance is None; we return None for groups that pass
    through a fixed-size split or an unmappable reshape or that would slice a bare parameter of an
    ignored layer (torch-pruning's ignore list covers modules only), and for groups the criterion itself
    cannot score (it raised), naming the root layer in `kept`.
    """

    def __init__(self, inner: tp.importance.Importance, names: dict[nn.Module, str], kept: KeptGroups, kept_params: list[nn.Parameter] = ()):
        self.inner, self.names, self.kept = inner, names, kept
        self.kept_params = {id(p) for p in kept_params}

    def __call__(self, group, **kwargs):
        root = self.names.get(group[0][0].target.module, "?")
        for dep, _ in group:
            if id(dep.target.module) in self.kept_params:  # a bare parameter of an ignored layer: its channels stay
                self.kept.reasons[root] = "shares channels with a parameter of an ignored layer"
                return None
            for node in (dep.source, dep.target):
                reason = _fixed_channel_op(node)
                if reason:
                    self.kept.reasons[root] = reason
                    return None
        try:
            return self.inner(group, **kwargs)
        except Exception as exc:  # torch-pruning's scoring can fail on odd groups; keep them rather than crash
            self.kept.reasons[root] = f"importance failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            return None


def ungroupable_layers(model: nn.Module, example_inputs: torch.Tensor, customized_pruners: dict) -> dict[str, str]:
    """{layer name: error} for layers whose channel group torch-pruning fails to build.

    A reshape it cannot map (a channel shuffle) can leave a later split without channel offsets,
    so collecting the group of a layer upstream of it raises; those layers must be kept whole.
    """
    graph = tp.DependencyGraph().build_dependency(
        model, example_inputs, forward_fn=traced_forward, unwrapped_parameters=bare_parameters(model),
        customized_pruners=customized_pruners,
    )
    names = {module: name for name, module in model.named_modules()}
    failed = {}
    for module in list(graph.module2node):
        pruner = graph.get_pruner_of_module(module) if isinstance(module, nn.Module) else None
        if pruner is None or not isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            continue
        channels = pruner.get_out_channels(module)
        if channels is None:
            continue
        try:
            graph.get_pruning_group(module, pruner.prune_out_channels, list(range(channels)))
        except Exception as exc:  # torch-pruning's grouping; the layer is what we need to know
            failed[names.get(module, "?")] = f"torch-pruning cannot group its channels ({type(exc).__name__})"
    return failed


@contextlib.contextmanager
def innermost_module_tracker(model: nn.Module) -> Iterator[list[str]]:
    """Yields a stack of the module names being executed; on an exception its top is the module that raised."""
    stack: list[str] = []
    handles = []
    for name, module in model.named_modules():
        def enter(mod, args, name=name):
            stack.append(name)

        def leave(mod, args, output, name=name):
            if stack and stack[-1] == name:
                stack.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def broken_layer(model: nn.Module, example_inputs: torch.Tensor, expected_shape: tuple[int, ...]) -> tuple[str, str] | None:
    """None if `model(example_inputs)` runs and has `expected_shape`; else (layer name, first line of the error)."""
    with innermost_module_tracker(model) as stack, torch.no_grad():
        try:
            output = model(example_inputs)
        except Exception as exc:  # any op may fail on a mis-sliced tensor: the layer is what we report
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return (stack[-1] if stack else ""), message
    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
    if shape != tuple(expected_shape):
        return "", f"output shape {shape}, expected {tuple(expected_shape)}"
    return None
