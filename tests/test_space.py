import numpy as np
import pytest

from uniscale_integrations import Config, ConfigSpace, ConfigSpaceError
from uniscale_integrations.features.space import IDENTITY_LIMIT


def test_config_round_trips_through_its_text_form() -> None:
    config = Config("M", qp=2, cp=4, bs=1)
    assert str(config) == "M/qp2/cp4/bs1"
    assert Config.parse(str(config)) == config
    assert config.paths == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "", "qp": 1}, "model"),
        ({"model": "M", "qp": 0}, "qp"),
        ({"model": "M", "cp": -2}, "cp"),
        ({"model": "M", "bs": 1.5}, "bs"),
        ({"model": "M", "qp": True}, "qp"),
        ({"model": "a/b"}, "model"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigSpaceError, match=message):
        Config(**kwargs)  # type: ignore[arg-type]


def test_parse_rejects_garbage() -> None:
    with pytest.raises(ConfigSpaceError, match=r"expected e\.g\."):
        Config.parse("M-qp1")


def test_grid_respects_the_path_cap_and_keeps_order() -> None:
    space = ConfigSpace.grid(["S", "M"], qp=(1, 2), cp=(1, 4), max_paths=4)
    assert [str(c) for c in space] == [
        "S/qp1/cp1/bs1",
        "S/qp1/cp4/bs1",
        "S/qp2/cp1/bs1",
        "M/qp1/cp1/bs1",
        "M/qp1/cp4/bs1",
        "M/qp2/cp1/bs1",
    ]
    assert space.index(Config("M", 2, 1, 1)) == 5
    assert Config("M", 2, 4, 1) not in space


def test_empty_and_duplicate_spaces_are_rejected() -> None:
    with pytest.raises(ConfigSpaceError, match="at least one"):
        ConfigSpace([])
    with pytest.raises(ConfigSpaceError, match="duplicate configurations: S/qp1/cp1/bs1"):
        ConfigSpace([Config("S"), Config("S")])
    with pytest.raises(ConfigSpaceError, match="max_paths"):
        ConfigSpace.grid(["S"], max_paths=0)
    with pytest.raises(ConfigSpaceError, match="not in this config space"):
        ConfigSpace([Config("S")]).index(Config("M"))


def test_features_encode_model_scaling_and_cost() -> None:
    space = ConfigSpace.grid(["S", "M"], cp=(1, 4))
    space = space.with_costs({c: 0.25 * (i + 1) for i, c in enumerate(space)})
    features = space.features()
    names = space.feature_names
    assert features.shape == (4, len(names))
    row = dict(zip(names, features[space.index(Config("M", 1, 4, 1))], strict=True))
    assert row == {
        "bias": 1.0,
        "model=S": 0.0,
        "model=M": 1.0,
        "log2_qp": 0.0,
        "log2_cp": 2.0,
        "log2_bs": 0.0,
        "model=S*log2_paths": 0.0,
        "model=M*log2_paths": 2.0,
        "nominal_cost": 1.0,
        "config=S/qp1/cp1/bs1": 0.0,
        "config=S/qp1/cp4/bs1": 0.0,
        "config=M/qp1/cp1/bs1": 0.0,
        "config=M/qp1/cp4/bs1": 1.0,
    }
    with pytest.raises(ValueError, match="read-only"):
        features[0, 0] = 5.0
    assert np.all(features[:, 0] == 1.0)


def test_costs_must_cover_the_space_and_lie_in_unit_interval() -> None:
    space = ConfigSpace.grid(["S"], cp=(1, 2))
    with pytest.raises(ConfigSpaceError, match="missing"):
        space.with_costs({Config("S"): 0.5})
    with pytest.raises(ConfigSpaceError, match=r"\[0, 1\]"):
        space.with_costs(dict.fromkeys(space, 2.0))


def test_each_configuration_has_its_own_feature_in_small_spaces_only() -> None:
    small = ConfigSpace.grid(["S", "M"], qp=(1, 2), cp=(1, 2, 4, 8))
    identity = small.features()[:, -len(small) :]
    assert small.identity
    assert np.array_equal(identity, np.eye(len(small)))
    assert small.with_costs(dict.fromkeys(small, 0.5)).identity
    large = ConfigSpace.grid(["S", "M", "L"], qp=(1, 2), cp=(1, 2, 4, 8), bs=(1, 2))
    assert len(large) > IDENTITY_LIMIT
    assert not large.identity
    assert large.features().shape[1] == len(large.feature_names) == 11
    assert not ConfigSpace(small, identity=False).identity
    assert ConfigSpace(large, identity=True).features().shape[1] == 11 + len(large)
