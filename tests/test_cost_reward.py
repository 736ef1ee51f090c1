import math

import pytest

from uniscale_integrations import Config, ConfigSpace, CostModel, RewardWeights, Usage
from uniscale_integrations.reward.cost import ModelShape, NominalBudget, SpacePricing, nominal_usage

SHAPE = ModelShape(params=1_000_000, n_layers=2, kv_dim=8)


def test_eflops_add_compute_and_memory_traffic() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=5, tokens_processed=20, forward_passes=3, kv_reads=100)
    model = CostModel(flops_per_byte=2.0, bytes_per_param=4.0)
    compute = 2 * 1_000_000 * 20
    memory = 2.0 * (4.0 * 1_000_000 * 3 + 4.0 * 2 * 2 * 8 * 100)
    assert model.eflops(SHAPE, usage) == pytest.approx(compute + memory)


def test_batching_is_cheaper_than_sequential_paths() -> None:
    model = CostModel()
    budget = NominalBudget(prompt_tokens=32, new_tokens=32)
    one = model.eflops(SHAPE, nominal_usage(Config("M"), budget))
    eight = model.eflops(SHAPE, nominal_usage(Config("M", cp=8), budget))
    assert one < eight < 8 * one


def test_usage_adds_field_by_field() -> None:
    total = Usage(1, 2, 3, 4, 5) + Usage(10, 20, 30, 40, 50)
    assert total == Usage(11, 22, 33, 44, 55)
    assert total.total_tokens == 33


def test_pricing_normalises_against_the_dearest_config() -> None:
    space = ConfigSpace.grid(["S", "M"], cp=(1, 4))
    shapes = {"S": SHAPE, "M": ModelShape(4_000_000, 4, 16)}
    pricing = SpacePricing.of(space, shapes, CostModel())
    normalised = pricing.normalised()
    assert normalised[Config("M", cp=4)] == 1.0
    assert 0 < normalised[Config("S")] < normalised[Config("S", cp=4)] < 1
    assert pricing.normalise(10 * pricing.max_eflops) == 1.0
    with pytest.raises(ValueError, match="no model shape for: M"):
        SpacePricing.of(space, {"S": SHAPE}, CostModel())


def test_cost_model_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="flops_per_byte"):
        CostModel(flops_per_byte=math.nan)
    assert CostModel.for_device("cuda:0").bytes_per_param == 2.0


def test_dense_reward_follows_the_formula_and_presets() -> None:
    weights = RewardWeights(correct=0.5, score=0.2, cost=0.3)
    assert weights.reward(correct=1, score=0.5, cost=0.25) == pytest.approx(0.5 + 0.1 + 0.225)
    cost_sensitive = RewardWeights.preset("cost-sensitive")
    quality_first = RewardWeights.preset("quality-first")
    assert cost_sensitive.cost > quality_first.cost
    # a cheap wrong answer is worth more than a dear right one only when cost matters
    cheap_wrong = {"correct": 0.0, "score": 0.0, "cost": 0.0}
    dear_right = {"correct": 1.0, "score": 1.0, "cost": 1.0}
    assert quality_first.reward(**dear_right) > quality_first.reward(**cheap_wrong)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1, 1.5, "1"])
def test_reward_inputs_must_be_in_unit_interval(bad: object) -> None:
    with pytest.raises(ValueError, match="correct"):
        RewardWeights.preset("quality-first").reward(correct=bad, score=0.5, cost=0.5)  # type: ignore[arg-type]


def test_reward_weights_validation() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        RewardWeights(correct=-1, score=0, cost=0)
    with pytest.raises(ValueError, match="positive"):
        RewardWeights(correct=0, score=0, cost=0)
    with pytest.raises(ValueError, match="unknown mode"):
        RewardWeights.preset("cheap")  # type: ignore[arg-type]
