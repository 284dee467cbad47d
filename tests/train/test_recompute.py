"""Activation checkpointing: less kept for backward, the same weights and BatchNorm statistics."""

import pytest
import torch
import torch.nn.functional as F

from slimvision.data import get_dataset
from slimvision.errors import ConfigError
from slimvision.models import create_model
from slimvision.train import Trainer, TrainConfig
from slimvision.train.recompute import activation_checkpointing, checkpoint_blocks


def _saved_bytes(model, inputs) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of one training forward."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        F.cross_entropy(model(inputs), torch.zeros(len(inputs), dtype=torch.long)).backward()
    return sum(storages.values())


def test_blocks_are_the_composite_modules_of_sequentials():
    mbv2 = create_model("mobilenetv2", num_classes=10)
    assert checkpoint_blocks(mbv2) == list(mbv2.features)  # stem, 17 inverted residuals, last 1x1 conv
    resnet = create_model("resnet20")
    assert checkpoint_blocks(resnet) == [block for stage in (resnet.layer1, resnet.layer2, resnet.layer3) for block in stage]
    assert checkpoint_blocks(create_model("small_cnn")) == []  # a flat Sequential of layers has no blocks


def test_checkpointing_keeps_far_less_for_backward_and_gives_the_same_gradients():
    torch.manual_seed(0)
    model = create_model("mobilenetv2", num_classes=10).train()
    inputs = torch.randn(2, 3, 64, 64)
    torch.manual_seed(1)  # the same dropout mask in the classifier on both passes
    kept = _saved_bytes(model, inputs)
    plain_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    with activation_checkpointing(model):
        kept_checkpointed = _saved_bytes(model, inputs)
    assert kept_checkpointed < kept / 8, (kept_checkpointed, kept)
    for plain, recomputed in zip(plain_grads, (p.grad for p in model.parameters())):
        assert torch.allclose(plain, recomputed, atol=1e-6, rtol=1e-5)
    assert "forward" not in model.features[1].__dict__  # the block's own forward is back after the block


def _train(checkpoint_activations: bool, tmp_path):
    data = get_dataset("synthetic", "train", image_size=16).subset(64)
    torch.manual_seed(0)
    model = create_model("mobilenetv2_cifar", num_classes=data.spec.num_classes, width_mult=0.25, dropout=0.2)
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, warmup_epochs=0, progress=False, checkpoint_activations=checkpoint_activations)
    Trainer(model, data, None, config).fit()
    return model.state_dict()


def test_training_with_checkpointing_ends_at_the_same_weights_and_batchnorm_statistics(tmp_path):
    plain, checkpointed = _train(False, tmp_path), _train(True, tmp_path)
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        # running statistics included: a recomputed block must not count as a second BatchNorm step
        assert torch.allclose(plain[name].float(), checkpointed[name].float(), atol=1e-5, rtol=1e-4), name


def test_a_model_without_blocks_is_refused_with_its_name():
    data = get_dataset("synthetic", "train", image_size=8).subset(16)
    config = TrainConfig(epochs=1, batch_size=16, progress=False, checkpoint_activations=True)
    with pytest.raises(ConfigError, match="SmallCNN has no blocks"):
        Trainer(create_model("small_cnn", in_chans=3), data, None, config).fit()
