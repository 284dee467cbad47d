"""How fast one subnet of the mbv2 space leaves chance when trained alone, from its own init or the supernet's.

The one-shot study's supernet spends its first epochs near chance; this separates what the subnet does by itself
(stand-alone training, the study's protocol: SGD 0.1, 1 warm-up epoch then cosine) from what the supernet adds.
`--init supernet` starts from the weights an untrained supernet would hand the subnet (`Mbv2Supernet.extract`: the
leading channels, the centre of the 7x7 depthwise kernels, scaled for the largest shapes), so a difference between
the two inits would point at the shared weights' initial scale. Prints train loss and validation top-1 per epoch.

    python benchmarks/nas_subnet_startup.py --data digits-hard --image-size 16 --arch-index 19 --init supernet

`--arch-index` picks one of the one-shot study's 20 subnets (`nas_oneshot.spread_archs`, 0 = fewest MACs).
"""

from __future__ import annotations

import argparse

import torch

from nas_oneshot import spread_archs
from slimvision.data import get_dataset
from slimvision.nas.spaces.mbv2 import Mbv2Space
from slimvision.nas.supernet.mbv2 import Mbv2Supernet
from slimvision.train import TrainConfig, Trainer, seed_everything
from slimvision.train.callbacks import Callback


class PrintEpochs(Callback):
    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        print(f"epoch {epoch}: train loss {metrics['train_loss']:.4f}, validation top-1 {metrics['val_accuracy']:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits-hard")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--arch-index", type=int, default=19, help="Which of the one-shot study's 20 subnets (0-19, by MACs).")
    parser.add_argument("--init", choices=("own", "supernet"), default="own", help="The subnet's own init, or the slices of an untrained supernet.")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = Mbv2Space()
    arch = spread_archs(space, 20)[args.arch_index]
    train, val = (get_dataset(args.data, split, args.image_size) for split in ("train", "val"))
    seed_everything(args.seed)
    if args.init == "own":
        model = space.build(arch, train.spec.num_classes, train.spec.in_chans)
    else:
        model = Mbv2Supernet(train.spec.num_classes, train.spec.in_chans).extract(arch)
        for module in model.modules():  # a fresh network's BN statistics, as the own init has
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
    print(f"subnet {args.arch_index} ({space.macs(arch, args.image_size, train.spec.in_chans) / 1e6:.1f}M MACs), {args.init} init", flush=True)
    config = TrainConfig(epochs=args.epochs, seed=args.seed, channels_last=True, progress=False)
    Trainer(model, train, val, config, callbacks=[PrintEpochs()]).fit()


if __name__ == "__main__":
    main()
