"""Sequence pooling through DSETracker: padding never changes a value.

A tiny transformer, built here from torch only, reads generated token sequences of
different lengths. The same sentences, padded to two lengths on either side, must give
the same DSE and DSMI(Z; Y) to 1e-6 with mask-aware pooling; a plain mean over every
token (the broken variant: no mask) does not.
"""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from dse_callback import DSETracker

from conftest import requires_cuda

VOCAB, DIM, N = 40, 16, 48


class Block(nn.Module):
    """One attention block; returns a dict, as Hugging Face layers return a ModelOutput."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.mlp = nn.Sequential(nn.Linear(DIM, 2 * DIM), nn.GELU(), nn.Linear(2 * DIM, DIM))

    def forward(self, h, attention_mask):
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        scores = q @ k.transpose(1, 2) / math.sqrt(DIM)
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, float("-inf"))  # no token attends to a pad
        h = h + scores.softmax(dim=-1) @ v
        return {"attentions": None, "last_hidden_state": h + self.mlp(h)}


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.position = nn.Embedding(32, DIM)
        self.block = Block()
        self.head = nn.Linear(DIM, 3)

    def forward(self, input_ids, attention_mask):
        positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # counted from the first real token
        h = self.embed(input_ids) * 3 + self.position(positions)
        h = self.block(h, attention_mask)["last_hidden_state"]
        return self.head(h[:, 0])


def sentences(seed: int = 0):
    """N token sequences of 2 to 9 tokens (ids >= 1; 0 pads), and a label that depends on them."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 10, (N,), generator=generator)
    tokens = [torch.randint(1, VOCAB, (int(n),), generator=generator) for n in lengths]
    labels = torch.tensor([int(t[0]) % 3 for t in tokens])
    return tokens, labels


class Padded(Dataset):
    """{"input_ids", "attention_mask", "label"} items, every sequence padded to `length` on `side`."""

    def __init__(self, tokens, labels, length: int, side: str):
        self.items = []
        for ids, label in zip(tokens, labels):
            pad = torch.zeros(length - len(ids), dtype=torch.long)
            mask = torch.cat([torch.ones(len(ids), dtype=torch.long), torch.zeros_like(pad)])
            ids = torch.cat([ids, pad])
            if side == "left":
                ids, mask = ids.roll(len(pad)), mask.roll(len(pad))
            self.items.append({"input_ids": ids, "attention_mask": mask, "label": label})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def measure(dataset, device="cpu", **options):
    torch.manual_seed(0)
    model = TinyTransformer().double().to(device)
    tracker = DSETracker(
        probe=dataset,
        layers={"tokens": "block", "head": "head"},
        capture="output",
        output_key="last_hidden_state",
        batch_to_inputs=lambda batch: {key: batch[key] for key in ("input_ids", "attention_mask")},
        forward=lambda module, inputs: module(**inputs),
        label_key="label",
        metrics=("dse", "dsmi_y"),
        sigma="median",
        probe_batch_size=20,  # batches of 20, 20 and 8: pads differ per batch too
        **options,
    )
    values = tracker.measure(model, 0)
    return values, tracker


PADDINGS = [(10, "right"), (17, "right"), (10, "left"), (17, "left")]


@pytest.mark.parametrize("pool", ["mean", "last", "first"])
def test_the_same_sentences_padded_to_any_length_on_either_side_give_the_same_values(pool):
    tokens, labels = sentences()
    runs = [measure(Padded(tokens, labels, length, side), pool=pool) for length, side in PADDINGS]
    reference, tracker = runs[0]
    assert 0.5 < reference["dse/tokens"] < math.log2(N) - 0.5  # neither saturated end: the test can see a change
    for values, _ in runs[1:]:
        for key in ("dse/tokens", "dsmi/tokens_Y"):
            assert values[key] == pytest.approx(reference[key], abs=1e-6), key
    rows = tracker.history[0]
    assert (rows["tokens"]["pool"], rows["head"]["pool"]) == (pool, "none")  # the history records the pooling


@pytest.mark.parametrize("pool", ["mean", "last"])
def test_pooling_without_the_mask_is_not_padding_invariant(pool):
    """The broken variants, a plain mean and h[:, -1] (mask_key=None), fail the check above."""
    tokens, labels = sentences()
    runs = [measure(Padded(tokens, labels, length, side), pool=pool, mask_key=None)[0] for length, side in PADDINGS]
    spread = max(
        max(run[key] for run in runs) - min(run[key] for run in runs) for key in ("dse/tokens", "dsmi/tokens_Y")
    )
    assert spread > 0.01


@requires_cuda
def test_on_a_gpu_the_masks_follow_the_batches_and_the_values_match_the_cpu():
    tokens, labels = sentences()
    for length, side in PADDINGS[1:]:
        cpu, _ = measure(Padded(tokens, labels, length, side), pool="last")
        gpu, _ = measure(Padded(tokens, labels, length, side), device="cuda", pool="last")
        assert gpu["dse/tokens"] == pytest.approx(cpu["dse/tokens"], abs=1e-6)
