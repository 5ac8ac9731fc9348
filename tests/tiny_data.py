"""Task data for tiny models without files: seeded random token ids or waveforms with labels."""

import random

import torch

from compbench.compression.context import Batch, CalibrationData, CompressionContext

LABELS = ["no", "yes"]
SPLIT_SEEDS = {"train": 0, "dev": 1, "test": 2}


class RandomTaskData(CalibrationData):
    """``examples`` per split of random inputs; labels from a fixed rule, so there is something to learn."""

    def __init__(self, modality: str, examples: int = 32, labels: list[str] = LABELS, vocab: int = 100):
        self.task, self.task_version, self.labels = "tiny-task", 1, list(labels)
        self.modality, self.count, self.vocab = modality, examples, vocab

    def examples(self, split: str) -> int:
        return self.count

    def mean_input_size(self, split: str) -> float:
        return 12 if self.modality == "text" else 0.1  # every example: 12 tokens, or 1600 samples

    def _example(self, split: str, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(SPLIT_SEEDS[split] * 100_003 + index)  # the same in every process
        if self.modality == "text":
            ids = torch.randint(3, self.vocab, (12,), generator=generator)
            return ids, int(ids[0] % len(self.labels))
        wave = torch.randn(1600, generator=generator)
        return wave, int(wave[:100].mean() > 0) % len(self.labels)

    def batches(self, split: str, batch_size: int, seed: int):
        order = list(range(self.count))
        random.Random(seed).shuffle(order)
        for start in range(0, self.count, batch_size):
            items = [self._example(split, i) for i in order[start:start + batch_size]]
            stacked = torch.stack([x for x, _ in items])
            labels = torch.tensor([y for _, y in items])
            key = "input_ids" if self.modality == "text" else "input_values"
            yield Batch({key: stacked}, labels)


def tiny_context(modality: str, examples: int = 32, seed: int = 0, labels: list[str] = LABELS) -> CompressionContext:
    return CompressionContext(data=RandomTaskData(modality, examples, labels), seed=seed)
