from __future__ import annotations

import pytest
from helpers import compose_config
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from asym_sweep.config import (
    ADDED_SETTINGS,
    ConfigError,
    identity,
    identity_differences,
    settings_tag,
    validate,
    with_defaults,
)
from asym_sweep.records import run_dir


def test_default_config_is_the_thesis_setup():
    cfg = compose_config([])
    assert cfg.dataset.name == "fashion_mnist" and cfg.train.epochs == 20
    assert cfg.method.name == "topk" and cfg.method.params.k == 40 and cfg.method.scope == "batch"
    assert cfg.train.batch_size == 50
    o = cfg.train.optim
    assert (o.lr, o.beta1, o.beta2, o.eps) == (1e-3, 0.9, 0.999, 1e-8)
    validate(cfg)


@pytest.mark.parametrize(
    "method,params,dropout",
    [
        ("dropout", {}, 0.4),
        ("topk", {"k": 40}, 0.0),
        ("complete", {"k": 170}, 0.0),
        ("partial", {"k1": 40, "k2": 200, "x_scope": "sample"}, 0.0),
    ],
)
def test_thesis_methods_have_thesis_defaults(method, params, dropout):
    cfg = compose_config([f"method={method}"])
    assert dict(cfg.method.params) == params and cfg.method.dropout == dropout
    validate(cfg)


def test_mnist_uses_17_epochs_and_overrides_compose():
    cfg = compose_config(["dataset=mnist", "method=partial", "method.params.k2=100", "arch=l2-128", "seed=3"])
    assert cfg.train.epochs == 17 and cfg.method.params.k2 == 100
    assert str(run_dir(cfg)) == "outputs/runs/mnist/l2-128/partial-k1_40-k2_100-x_scope_sample/seed3"


def test_presets_compose():
    cfg = compose_config(["+experiment=thesis_mnist"])
    assert cfg.arch == "l1-512" and cfg.dataset.name == "mnist"


@pytest.mark.parametrize("override", ["train.epoc=3", "train.epochs=abc", "method=nope", "dataset=cifar"])
def test_typos_and_wrong_types_fail_at_composition(override):
    with pytest.raises(ConfigCompositionException):
        compose_config([override])


@pytest.mark.parametrize(
    "override,message",
    [
        ("arch=l0-64", "bad architecture"),
        ("arch=3x256", "bad architecture"),
        ("method.params.k=0", "k must be >= 1"),
        ("method.scope=layer", "unknown scope"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("method.dropout=1.5", "dropout"),
        ("device=tpu", "device must be"),
    ],
)
def test_semantic_errors_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config([override]))


def test_identity_ignores_how_a_run_executes():
    a = identity(compose_config(["threads=1", "device=cpu"]))
    b = identity(compose_config(["threads=2", "progress=off", "dataset.root=/elsewhere"]))
    assert a == b
    c = identity(compose_config(["train.batch_size=10"]))
    assert identity_differences(a, c) == ["train.batch_size: 50 -> 10"]


def test_with_defaults_of_a_plain_config_equals_the_omegaconf_round_trip():
    """Records are plain dicts: copied directly, they must give what OmegaConf's resolve gives."""
    composed = compose_config(["method=partial", "train.batch_size=10"])
    plain = OmegaConf.to_container(composed, resolve=True)
    expected = {k: v for k, v in OmegaConf.to_container(OmegaConf.create(plain), resolve=True).items() if k != "hydra"}
    assert with_defaults(plain) == expected == with_defaults(composed)
    # An older record without the keys added since: the schema's defaults fill them in.
    for key in ADDED_SETTINGS:
        head, _, tail = key.partition(".")
        del plain[head][tail]
    filled = with_defaults(plain)
    assert [filled[k.split(".")[0]][k.split(".")[1]] for k in ADDED_SETTINGS] == [
        OmegaConf.select(composed, k) for k in ADDED_SETTINGS
    ]
    # Interpolations are resolved (through OmegaConf), tuples become lists, as in the round trip.
    odd = {"a": (1, 2), "b": {"c": "${a}", "d": [{"e": "x${f}"}]}, "f": 3, "hydra": {"x": 1}}
    assert {k: v for k, v in with_defaults(odd).items() if k in ("a", "b", "f")} == {
        "a": [1, 2],
        "b": {"c": [1, 2], "d": [{"e": "x3"}]},
        "f": 3,
    }
    assert "hydra" not in with_defaults(odd)
    assert ADDED_SETTINGS == ("dataset.scaling", "method.dropout_at")
    assert with_defaults({"a": (1, (2, 3)), "b": {"c": (4,)}}) == {
        "a": [1, [2, 3]],
        "b": {"c": [4]},
        "dataset": {"scaling": "unit"},
        "method": {"dropout_at": "all"},
    }


def test_settings_tag_of_a_plain_record_equals_that_of_its_config():
    cases = {
        ("method=topk",): "",
        ("method=partial", "train.batch_size=10", "train.epochs=2"): "+e2+b10",
        ("dataset=mnist", "train.epochs=17"): "",
        ("dataset=mnist", "train.epochs=20"): "+e20",
        ("method=dropout",): "",
        ("method=dropout", "dataset.scaling=standard"): "+standard",
    }
    for overrides, tag in cases.items():
        composed = compose_config(list(overrides))
        assert settings_tag(OmegaConf.to_container(composed, resolve=True)) == settings_tag(composed) == tag, overrides
