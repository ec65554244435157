import math

import torch

from phf.objectives import OBJECTIVES


def test_mle_against_hand_computed_values():
    # two positions, vocabulary of three: logits [0, ln 2, 0] -> p = [1/4, 1/2, 1/4]
    logits = torch.tensor([[[0.0, math.log(2), 0.0], [0.0, 0.0, 0.0]]])
    targets = torch.tensor([[1, 2]])
    loss, metrics = OBJECTIVES["mle"](logits, targets, torch.zeros(1, 2), None)
    expected = (-math.log(1 / 2) - math.log(1 / 3)) / 2
    assert loss.item() == torch.tensor(expected).item()
    assert metrics["nll"].item() == loss.item()


def test_filtering_and_conditional_use_the_mle_loss():
    # they are data transforms (phf.data.packing): the loss itself is MLE
    assert OBJECTIVES["filtering"] is OBJECTIVES["mle"] is OBJECTIVES["conditional"]
