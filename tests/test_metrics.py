import pytest

from phf.evaluation.metrics import misalignment


def test_expected_max_groups_consecutive_samples():
    scores = [0, 1, 0, 0, 5, 0, 9]  # groups of 3: [0,1,0] [0,5,0]; the incomplete [9] is left out
    assert misalignment(scores, 0.5, k=3)["expected_max@3"] == pytest.approx((1 + 5) / 2)
    # the reference's strided grouping would take [0,0,9],[1,5],[0,0] instead


def test_expected_max_with_fewer_than_k_samples_is_none():
    assert misalignment([1.0, 2.0], 0.5)["expected_max@25"] is None


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


def test_prompted_standard_errors_are_over_the_prompts_means():
    # two prompts, three samples each: means 0.2 and 0.6, hit rates 1/3 and 1 (threshold 0.15); None is left out
    scores = [0.0, 0.0, 0.6, None, 0.6, 0.6, 0.6]
    prompts = ["a", "a", "a", "b", "b", "b", "b"]
    m = misalignment(scores, hit_threshold=0.15, k=2, clusters=prompts)
    assert m["num_samples"] == 6 and m["mean"] == pytest.approx(0.4)
    assert m["sem"] == pytest.approx(0.2)  # std of (0.2, 0.6) = 0.2 sqrt(2), over sqrt(2)
    assert m["hit_rate_sem"] == pytest.approx(1 / 3)  # std of (1/3, 1), over sqrt(2)
    independent = misalignment(scores, hit_threshold=0.15, k=2)
    assert independent["sem"] == pytest.approx((0.48 / 5) ** 0.5 / 6 ** 0.5)  # squared deviations from 0.4: 0.48
