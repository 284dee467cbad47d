"""Pruning across model families, without timm/torchvision: tiny self-written models with the
structures that broke real architectures (LayerScale, channel shuffle, fused-qkv attention,
a [1, d, d] split, SE + hardswish, a BatchNorm subclass, cls_token/pos_embed, conv attention whose
q/k/v feature maps are reshaped into heads), each pruned to 50% of its MACs, saved, reloaded and run."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.errors import SlimvisionError
from slimvision.io import ArchSpec, load_artifact, save_artifact
from slimvision.models import MODELS
from slimvision.prune import PruneConfig, prune
from slimvision.prune.pruner import compact_tensors

INPUT = (3, 16, 16)


class LayerScale(nn.Module):
    def __init__(self, dim: int, shape: tuple[int, ...]):
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x):
        return x * self.gamma


class ConvNeXtLike(nn.Module):
    """Depthwise conv + pointwise MLP + LayerScale [C, 1, 1] on a residual stream."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, width, 4, 4)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width),
                          nn.Conv2d(width, 4 * width, 1), nn.GELU(), nn.Conv2d(4 * width, width, 1), LayerScale(width, (width, 1, 1)))
            for _ in range(2)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean((2, 3)))


def channel_shuffle(x, groups: int):
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(nn.Conv2d(half, 2 * half, 1), nn.BatchNorm2d(2 * half), nn.ReLU(),
                                    nn.Conv2d(2 * half, 2 * half, 3, padding=1, groups=2 * half), nn.Conv2d(2 * half, half, 1), nn.ReLU())

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2)


class ShuffleDownUnit(nn.Module):
    """ShuffleNetV2's stride-2 unit: two branches of the same input, concatenated, shuffled."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        half = channels // 2
        self.branch1 = nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, 2, 1, groups=in_channels), nn.Conv2d(in_channels, half, 1), nn.ReLU())
        self.branch2 = nn.Sequential(nn.Conv2d(in_channels, half, 1), nn.ReLU(), nn.Conv2d(half, half, 3, 2, 1, groups=half), nn.Conv2d(half, half, 1), nn.ReLU())

    def forward(self, x):
        return channel_shuffle(torch.cat([self.branch1(x), self.branch2(x)], 1), 2)


class ShuffleNetLike(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width // 2, 3, 1, 1), nn.BatchNorm2d(width // 2), nn.ReLU())
        self.units = nn.Sequential(ShuffleDownUnit(width // 2, width), ShuffleUnit(width), ShuffleUnit(width))
        self.last = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.ReLU())
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.last(self.units(self.stem(x))).mean((2, 3)))


class Attention(nn.Module):
    """Fused qkv, reshaped into heads with `num_heads`/`head_dim` attributes, as timm writes it."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm1, self.attn, self.ls1 = nn.LayerNorm(dim), Attention(dim, num_heads), LayerScale(dim, (dim,))
        self.norm2, self.ls2 = nn.LayerNorm(dim), LayerScale(dim, (dim,))
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ViTLike(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, dim: int = 32, num_heads: int = 2):
        super().__init__()
        self.patch = nn.Conv2d(in_chans, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        self.blocks = nn.Sequential(TransformerBlock(dim, num_heads), TransformerBlock(dim, num_heads))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class SeparableSelfAttention(nn.Module):
    """MobileViTv2's linear attention: a 1x1 conv to 1 + 2d channels, split into fixed sizes [1, d, d]."""

    def __init__(self, dim: int):
        super().__init__()
        self.embed_dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        query, key, value = self.qkv_proj(x).split([1, self.embed_dim, self.embed_dim], dim=1)
        context = (key * query.softmax(dim=-1)).sum(dim=-1, keepdim=True)
        return self.out_proj(F.relu(value) * context)


class MobileViTLike(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 2, 1), nn.BatchNorm2d(width), nn.SiLU())
        self.local = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.SiLU(), nn.Conv2d(2 * width, width, 1))
        self.attn = SeparableSelfAttention(width)
        self.ffn = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.SiLU(), nn.Conv2d(4 * width, width, 1))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.local(self.stem(x))
        x = x + self.attn(x)
        x = x + self.ffn(x)
        return self.fc(x.mean((2, 3)))


class ConvAttention(nn.Module):
    """EfficientFormerV2's attention on a feature map: 1x1 conv q/k/v reshaped into heads x tokens,
    a learned bias per head and token distance, talking-head convs, a depthwise branch on v."""

    def __init__(self, dim: int, key_dim: int = 16, num_heads: int = 4, attn_ratio: int = 2, resolution: int = 4):
        super().__init__()
        self.num_heads, self.scale = num_heads, key_dim ** -0.5
        qk_dim, self.v_dim = key_dim * num_heads, attn_ratio * key_dim * num_heads
        self.q = nn.Sequential(nn.Conv2d(dim, qk_dim, 1), nn.BatchNorm2d(qk_dim))
        self.k = nn.Sequential(nn.Conv2d(dim, qk_dim, 1), nn.BatchNorm2d(qk_dim))
        self.v = nn.Sequential(nn.Conv2d(dim, self.v_dim, 1), nn.BatchNorm2d(self.v_dim))
        self.v_local = nn.Sequential(nn.Conv2d(self.v_dim, self.v_dim, 3, padding=1, groups=self.v_dim), nn.BatchNorm2d(self.v_dim))
        self.talking_head1 = nn.Conv2d(num_heads, num_heads, 1)
        self.talking_head2 = nn.Conv2d(num_heads, num_heads, 1)
        self.attention_biases = nn.Parameter(torch.randn(num_heads, resolution * resolution) * 0.1)
        pos = torch.stack(torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")).flatten(1)
        distance = (pos[:, :, None] - pos[:, None, :]).abs()
        self.register_buffer("bias_idxs", distance[0] * resolution + distance[1], persistent=False)
        self.proj = nn.Sequential(nn.GELU(), nn.Conv2d(self.v_dim, dim, 1), nn.BatchNorm2d(dim))

    def forward(self, x):
        b, _, h, w = x.shape
        q = self.q(x).reshape(b, self.num_heads, -1, h * w).permute(0, 1, 3, 2)
        k = self.k(x).reshape(b, self.num_heads, -1, h * w)
        v = self.v(x)
        v_local = self.v_local(v)
        v = v.reshape(b, self.num_heads, -1, h * w).permute(0, 1, 3, 2)
        attn = (q @ k) * self.scale + self.attention_biases[:, self.bias_idxs]
        attn = self.talking_head2(self.talking_head1(attn).softmax(dim=-1))
        x = (attn @ v).transpose(2, 3).reshape(b, self.v_dim, h, w) + v_local
        return self.proj(x)


class EfficientFormerV2Like(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 4, 4), nn.BatchNorm2d(width), nn.GELU())
        self.attn = ConvAttention(width)
        self.mlp = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.GELU(), nn.Conv2d(4 * width, width, 1), nn.BatchNorm2d(width))
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return self.fc(x.mean((2, 3)))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, channels // 4, 1), nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x):
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


class MobileNetV3Like(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 2, 1), nn.BatchNorm2d(width), nn.Hardswish())
        expand = 4 * width
        self.block = nn.Sequential(
            nn.Conv2d(width, expand, 1), nn.BatchNorm2d(expand), nn.Hardswish(),
            nn.Conv2d(expand, expand, 3, padding=1, groups=expand), nn.BatchNorm2d(expand), nn.Hardswish(),
            SqueezeExcite(expand), nn.Conv2d(expand, width, 1), nn.BatchNorm2d(width),
        )
        self.last = nn.Sequential(nn.Conv2d(width, 6 * width, 1), nn.Hardswish())
        self.fc = nn.Linear(6 * width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.block(x)
        return self.fc(self.last(x).mean((2, 3)))


class BatchNormAct(nn.BatchNorm2d):
    """A BatchNorm2d subclass with its activation inside (timm's BatchNormAct2d)."""

    def __init__(self, num_features: int):
        super().__init__(num_features)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(super().forward(x))


class CNNWithBatchNormSubclass(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1, bias=False), BatchNormAct(width),
            nn.Conv2d(width, 2 * width, 3, 2, 1, bias=False), BatchNormAct(2 * width),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False), BatchNormAct(2 * width),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


FAMILIES = {
    "family_convnext": ConvNeXtLike,
    "family_shufflenet": ShuffleNetLike,
    "family_vit": ViTLike,
    "family_mobilevit": MobileViTLike,
    "family_mobilenetv3": MobileNetV3Like,
    "family_bn_subclass": CNNWithBatchNormSubclass,
    "family_conv_attention": EfficientFormerV2Like,
}


@pytest.fixture
def registered(monkeypatch):
    """The test models as zoo entries for the duration of a test, so artifacts rebuild them by name."""
    for name, cls in FAMILIES.items():
        monkeypatch.setitem(MODELS._items, name, cls)


def _randomised(model: nn.Module) -> nn.Module:
    """Non-trivial BN statistics and LayerScale values, so a mis-sliced tensor changes the output."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
        if isinstance(module, LayerScale):
            module.gamma.data.copy_(torch.rand(module.gamma.shape, generator=generator) + 0.5)
    return model.eval()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_prunes_to_half_the_macs_saves_reloads_and_runs(name, registered, tmp_path):
    torch.manual_seed(0)
    model = _randomised(FAMILIES[name]())
    example = torch.randn(1, *INPUT)
    result = prune(model, example, PruneConfig(method="l1", macs_ratio=0.5))
    assert abs(result.macs_kept - 0.5) <= 0.02, (result.macs_kept, result.kept_layers)
    x = torch.randn(2, *INPUT)
    with torch.no_grad():
        expected = result.model(x)
    assert expected.shape == (2, 10)
    save_artifact(result.model, ArchSpec(name).with_shapes_of(result.model), tmp_path / name)
    reloaded = load_artifact(tmp_path / name).model
    with torch.no_grad():
        assert torch.allclose(reloaded(x), expected, atol=1e-5)


def test_attention_heads_are_rewritten_and_layer_scale_follows_its_channels(registered):
    model = _randomised(ViTLike(dim=32, num_heads=2))
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", macs_ratio=0.5))
    attn = result.model.blocks[0].attn
    assert attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim < 3 * 32
    for block in result.model.blocks:
        assert block.ls2.gamma.shape[0] == block.mlp[2].out_features == result.model.cls_token.shape[-1]


def test_fixed_size_split_keeps_its_channels_and_says_why(registered):
    model = _randomised(MobileViTLike())
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5))
    assert result.model.attn.qkv_proj.out_channels == 1 + 2 * result.model.attn.embed_dim
    assert any("attn.qkv_proj" in line and "split" in line for line in result.kept_layers), result.kept_layers


@pytest.mark.timeout(90)  # without the cut at the reshape into heads, torch-pruning's group search does not end
def test_conv_attention_reshaped_into_heads_keeps_q_k_v_and_prunes_the_rest(registered):
    model = _randomised(EfficientFormerV2Like())
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5))
    attn = result.model.attn
    assert (attn.q[0].out_channels, attn.k[0].out_channels, attn.v[0].out_channels) == (64, 64, 128)
    assert attn.q[0].in_channels == result.model.stem[0].out_channels < 32  # the residual stream is pruned
    assert result.model.mlp[0].out_channels < 128
    assert any(line.startswith("attn.q.0:") and "regroups channels" in line for line in result.kept_layers), result.kept_layers


@pytest.mark.parametrize(
    "shapes, regroups",
    [
        (((2, 64, 4, 4), (2, 4, 16, 16)), True),  # channels into heads
        (((2, 4, 32, 16), (2, 128, 4, 4)), True),  # heads back into channels
        (((2, 32, 4, 4), (2, 2, 16, 4, 4)), True),  # a channel shuffle's view
        (((2, 32, 4, 4), (2, 32, 16)), False),  # tokens flattened, channels stay
        (((2, 32, 4, 4), (2, 512)), False),  # flattened whole for a Linear
        (((2, 32, 1, 1), (2, 32)), False),
        (((32,), (1, 32, 1, 1)), False),  # a LayerScale gamma viewed for broadcasting
        (((2, 16, 96), (2, 16, 3, 4, 8)), False),  # a ViT's fused qkv: no [B, C, H, W] side
    ],
)
def test_reshapes_that_move_channels_out_of_dim_1_are_recognised(shapes, regroups):
    from slimvision.prune.patterns import regroups_channels

    assert regroups_channels(shapes) is regroups


def test_only_graphs_traced_for_prune_are_cut_at_splits_and_head_reshapes():
    import torch_pruning as tp

    from slimvision.prune.patterns import _no_channels, traced_forward

    def cut_nodes(model: nn.Module, **trace) -> set:
        graph = tp.DependencyGraph().build_dependency(model.eval(), torch.randn(1, *INPUT), **trace)
        graph.get_pruning_group(model.stem[0], tp.prune_conv_out_channels, [0])  # updates the index mappings
        return {node.type for node in graph.module2node.values() for dep in node.dependencies if dep.index_mapping[0] is _no_channels}

    for model, op in ((MobileViTLike(), tp.ops.OPTYPE.SPLIT), (EfficientFormerV2Like(), tp.ops.OPTYPE.RESHAPE)):
        assert cut_nodes(model) == set()  # e.g. CHEX's own graph: torch-pruning's mappings as they are
        assert cut_nodes(model, forward_fn=traced_forward) == {op}


def test_channel_shuffle_is_kept_and_the_inner_branch_is_pruned(registered):
    model = _randomised(ShuffleNetLike())
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5))
    unit = result.model.units[1]
    assert unit.branch[-2].out_channels == 16  # feeds the shuffle: kept
    assert unit.branch[0].out_channels < 32  # inside the branch: pruned


def test_a_forward_that_cannot_be_repaired_names_the_layer():
    class FixedWidth(nn.Module):
        """Reads a channel count fixed at build time from every block: no pruning can satisfy it."""

        def forward(self, x):
            return x.reshape(x.shape[0], 8, -1).mean(-1)

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), FixedWidth(), nn.Linear(8, 4)).eval()
    with pytest.raises(SlimvisionError, match=r"no longer runs: layer '3' \(Linear\) failed with mat1 and mat2"):
        prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5))


def test_compact_tensors_gives_sliced_views_their_own_storage():
    layer = nn.Linear(8, 8)
    layer.weight = nn.Parameter(torch.randn(16, 8).t()[:, :8].contiguous().t()[:8])  # a strided view
    layer.bias = nn.Parameter(torch.randn(32)[8:16])  # a view into a larger storage
    assert not layer.weight.is_contiguous() or layer.bias.storage_offset() != 0
    values = layer.weight.detach().clone(), layer.bias.detach().clone()
    compact_tensors(layer)
    assert layer.weight.is_contiguous() and layer.bias.storage_offset() == 0
    assert layer.bias.untyped_storage().nbytes() == 8 * 4
    assert torch.equal(layer.weight, values[0]) and torch.equal(layer.bias, values[1])


def test_an_ignored_layer_scale_keeps_its_gamma_and_every_channel_it_scales():
    model = _randomised(ConvNeXtLike())
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5, ignore_layers=("blocks.0.5",)))
    assert result.model.blocks[0][5].gamma.shape == (32, 1, 1) and result.model.stem.out_channels == 32
    assert result.model.blocks[0][2].out_channels < 128  # the MLP inside the block is still pruned
    assert any("ignored layer" in line for line in result.kept_layers), result.kept_layers
    assert not any("kept whole" in line for line in result.kept_layers)  # kept up front, not after a broken trial


def test_shape_entries_of_the_earlier_per_type_format_still_rebuild():
    from slimvision.models import create_model
    from slimvision.models.surgery import apply_shape_changes

    model = create_model("small_cnn", num_classes=3)
    model.features[0] = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
    model.features[1] = nn.BatchNorm2d(8)
    model.features[3] = nn.Conv2d(8, 32, 3, 2, 1, bias=False)
    legacy = {
        "features.0": {"type": "Conv2d", "in_channels": 1, "out_channels": 8, "groups": 1},
        "features.1": {"type": "BatchNorm2d", "num_features": 8},
        "features.3": {"type": "Conv2d", "in_channels": 8, "out_channels": 32, "groups": 1},
    }
    rebuilt = apply_shape_changes(create_model("small_cnn", num_classes=3), legacy)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))


def test_a_layer_torch_pruning_cannot_group_is_kept_whole(monkeypatch):
    import torch_pruning as tp

    model = _randomised(MobileNetV3Like())
    model.block[0].cannot_group = True  # survives the copies each trial prunes
    original = tp.DependencyGraph.get_pruning_group

    def failing(self, module, fn, idxs):  # what torch-pruning does on ShuffleNetV2's shuffle + chunk
        group = original(self, module, fn, idxs)
        if any(getattr(dep.target.module, "cannot_group", False) for dep, _ in group):
            raise IndexError("list index out of range")
        return group

    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", failing)
    result = prune(model, torch.randn(1, *INPUT), PruneConfig(method="l1", channel_ratio=0.5))
    assert result.model.block[0].out_channels == 128 and result.model.last[0].out_channels < 192
    assert any(line.endswith("torch-pruning cannot group its channels (IndexError)") for line in result.kept_layers), result.kept_layers
