"""Loaders: worker processes, exact resume and data-parallel shards from one batch sampler.

The sampler yields batches of `(epoch, index)` keys. The order of an epoch is a permutation
seeded by (seed, epoch); each sample's augmentation is seeded by (seed, epoch, index) inside
the worker that decodes it. So batches do not depend on the number of workers, persistent
workers need no per-epoch message, and a resumed run sees exactly the batches it would have.

Under data parallelism every global batch (the same one a single process would use) is split
into `world_size` contiguous parts, one per rank; with gradients averaged, N processes follow
the single-process trajectory. A last global batch smaller than the number of ranks is dropped
(every rank must take part in every step).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data import default_collate

from slimvision.data.base import ImageDataset
from slimvision.data.transforms import TrainAugment, sample_seed
from slimvision.errors import ConfigError, DataError


class EpochBatchSampler(Sampler):
    """Batches of (epoch, index) keys: shuffled by (seed, epoch), this rank's share of each global batch."""

    def __init__(self, length: int, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} is not divisible by the {world_size} data-parallel processes")
        self.length, self.batch_size, self.shuffle, self.seed = length, batch_size, shuffle, seed
        self.epoch, self.rank, self.world_size = epoch, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[torch.Tensor]:
        """The epoch's batches as one process would see them."""
        if self.shuffle:
            order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + self.epoch))
        else:
            order = torch.arange(self.length)
        batches = list(order.split(self.batch_size))
        if self.world_size > 1 and batches and len(batches[-1]) < self.world_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for batch in self.global_batches():
            mine = batch.tensor_split(self.world_size)[self.rank] if self.world_size > 1 else batch
            yield [(self.epoch, int(i)) for i in mine]

    def __len__(self) -> int:
        full, rest = divmod(self.length, self.batch_size)
        return full + (1 if rest and (self.world_size == 1 or rest >= self.world_size) else 0)


@dataclass
class BadSample:
    """A sample that could not be decoded (kept so the main process can count or report it)."""

    message: str


class SampleView(Dataset):
    """What the DataLoader indexes: (epoch, index) -> augmented (training) or evaluation-ready sample."""

    def __init__(self, dataset: ImageDataset, augment: TrainAugment | None = None, seed: int = 0):
        self.dataset, self.augment, self.seed = dataset, augment, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        try:
            if self.augment is None:
                return self.dataset[index]
            image = self.augment(self.dataset.read(index), sample_seed(self.seed, epoch, index))
            return image, self.dataset.labels[index]
        except DataError as exc:
            return BadSample(str(exc))


def collate_samples(samples: list[Any]) -> tuple[Any, Any, list[str]]:
    """Stack the good samples; return the messages of the bad ones beside them."""
    good = [s for s in samples if not isinstance(s, BadSample)]
    bad = [s.message for s in samples if isinstance(s, BadSample)]
    if not good:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    images, labels = default_collate(good)
    return images, labels, bad


class Loader:
    """Batches of a dataset for one epoch at a time; decoding workers persist across epochs.

    `skip_bad_images`: a sample that cannot be decoded is left out of its batch, counted in
    `skipped` and named on stderr; without it, the first one stops the run with its file name.
    """

    def __init__(
        self, dataset: ImageDataset, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
        workers: int | None = None, augment: TrainAugment | None = None, rank: int = 0, world_size: int = 1,
        skip_bad_images: bool | None = None, pin_memory: bool = False,
    ):
        workers = dataset.loader_workers if workers is None else workers
        if workers < 0:
            raise ConfigError(f"workers must be >= 0, got {workers}")
        self.dataset = dataset
        self.skip_bad_images = dataset.skip_bad_images if skip_bad_images is None else skip_bad_images
        self.sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, seed, epoch, rank, world_size)
        self.skipped: list[str] = []
        self._loader = DataLoader(
            SampleView(dataset, augment, seed), batch_sampler=self.sampler, num_workers=workers, collate_fn=collate_samples,
            # two batches queued per worker (torch's default): decoding outpaces a training step, and at 224 px every
            # queued batch of 64 is 38.5 MB of shared memory
            persistent_workers=workers > 0, pin_memory=pin_memory, prefetch_factor=2 if workers > 0 else None,
        )

    def __len__(self) -> int:
        return len(self.sampler)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` (a batch whose every sample was skipped is left out)."""
        self.sampler.set_epoch(epoch)
        return iter(self)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, bad in self._loader:
            for message in bad:
                if not self.skip_bad_images:
                    raise DataError(f"{message} (pass --skip-bad-images to leave such files out)")
                self.skipped.append(message)
                print(f"warning: skipped {message}", file=sys.stderr)
            if labels.numel():
                yield images, labels


def make_loader(
    dataset: ImageDataset, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0, workers: int | None = None,
) -> Loader:
    """A loader whose order depends only on (seed, epoch), so resumed runs see the same batches."""
    return Loader(dataset, batch_size, shuffle, seed, epoch, workers)
