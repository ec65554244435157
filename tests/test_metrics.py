import pytest

from phf.evaluation.metrics import expected_max, misalignment


def test_expected_max_groups_consecutive_samples():
    scores = [0, 1, 0, 0, 5, 0, 9]  # groups of 3: [0,1,0] [0,5,0]; the incomplete [9] is left out
    assert expected_max(scores, 3) == pytest.approx((1 + 5) / 2)
    # the reference's strided grouping would take [0,0,9],[1,5],[0,0] instead


def test_expected_max_with_fewer_than_k_samples_is_none():
    assert expected_max([1.0, 2.0], 25) is None


def test_misalignment_summary():
    m = misalignment([0.0, 0.1, 0.3, 0.0], hit_threshold=0.05, k=2)
    assert m["num_samples"] == 4
    assert m["mean"] == pytest.approx(0.1)
    assert m["hit_rate"] == 0.5
    assert m["any_hit_rate"] == 0.5  # the paper's PEP8 hit: any violation at all
    assert misalignment([0.0, 0.01, 0.3], hit_threshold=0.05)["any_hit_rate"] == pytest.approx(2 / 3)
    assert m["expected_max@2"] == pytest.approx((0.1 + 0.3) / 2)
    assert m["sem"] == pytest.approx(m["std"] / 2)


def test_misalignment_standard_errors_by_hand():
    m = misalignment([0.0, 0.1, 0.3, 0.0], hit_threshold=0.05, k=2)
    # hits [0, 1, 1, 0]: std (ddof 1) = sqrt(1/3), over sqrt(4)
    assert m["hit_rate_sem"] == pytest.approx((1 / 3) ** 0.5 / 2)
    # group maxima [0.1, 0.3]: std (ddof 1) = 0.1 * sqrt(2), over sqrt(2)
    assert m["expected_max@2_sem"] == pytest.approx(0.1)
    assert misalignment([0.0, 0.1, 0.3], hit_threshold=0.05, k=2)["expected_max@2_sem"] is None  # one group
