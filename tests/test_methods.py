from __future__ import annotations

import pytest

from asym_sweep.methods import MethodConfig


@pytest.mark.parametrize(
    "spec,tag",
    [
        (MethodConfig("topk", "topk", {"k": 40}), "topk-k40"),
        (MethodConfig("partial", "partial", {"k1": 40, "k2": 200}), "partial-k1_40-k2_200"),
        (MethodConfig("complete", "complete", {"k": 170}), "complete-k170"),
        (MethodConfig("dropout", "dense", {}, dropout=0.4), "dropout-p0.4"),
        (MethodConfig("topk", "topk", {"k": 40}, scope="sample"), "topk-k40-sample"),
        (MethodConfig("dropout", "dense", {}, scope="sample", dropout=0.4), "dropout-p0.4"),
        (MethodConfig("topk", "topk", {"k": 40}, sparsify_output=False), "topk-k40-denseout"),
    ],
)
def test_tags_are_distinct_and_readable(spec, tag):
    assert spec.tag() == tag


def test_from_config_and_rule_construction():
    spec = MethodConfig.from_config(
        {"name": "partial", "rule": "partial", "params": {"k1": 4, "k2": 9}, "scope": "sample"}
    )
    rule = spec.make_rule()
    assert rule.name == "partial" and rule.params() == {"k1": 4, "k2": 9, "x_scope": None} and rule.scope == "sample"


def test_bad_method_parameters_raise_value_error():
    with pytest.raises(ValueError, match="needs k2"):
        MethodConfig("partial", "partial", {"k1": 4}).make_rule()
