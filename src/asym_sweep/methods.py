"""Training methods: a backward rule plus the settings around it (dropout, scope, output layer).

A *method* is what a user names on the command line (``method=topk``); its
config file ``conf/method/<name>.yaml`` names a registered backward *rule*
(``rules/``) and gives its parameters. `MethodConfig` is both the schema Hydra checks that
file against and the object the runner builds rules from. The thesis' four methods
(section 9.1.2; ``grid.py``) are:

* ``dropout``: symmetric training, dense backward, dropout 0.4 on hidden activations;
* ``topk``: top-k asymmetry, k = 40;
* ``complete``: complete-sparsification asymmetry, k = 170;
* ``partial``: partial-connectivity asymmetry, k1 = 40, k2 = 200.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping

from omegaconf import MISSING, DictConfig, OmegaConf

from asym_sweep.engine.rule import BackwardRule
from asym_sweep.rules import make_rule


@dataclass
class MethodConfig:
    """Everything that defines a method: the schema of ``conf/method/*.yaml`` (Hydra rejects
    other keys and wrong types) and, built with `from_config`, the method itself."""

    name: str = MISSING
    rule: str = MISSING
    # The rule's parameters; free-form here, checked by the rule (`rules.make_rule`).
    params: Dict[str, Any] = field(default_factory=dict)
    scope: str = "batch"
    dropout: float = 0.0
    # Where dropout acts (thesis 9.1.2 says only "dropout 0.4"): after every hidden layer's ReLU
    # ("all"), or after the last hidden layer only, before the output layer ("last").
    dropout_at: str = "all"
    # The thesis applies its rule to every layer; the output layer (10 units) is
    # unaffected whenever k >= 10 anyway, but a user may exclude it explicitly.
    sparsify_output: bool = True

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "MethodConfig":
        return cls(
            name=str(cfg["name"]),
            rule=str(cfg["rule"]),
            params=_plain(cfg.get("params") or {}),
            scope=str(cfg.get("scope", "batch")),
            dropout=float(cfg.get("dropout", 0.0)),
            dropout_at=str(cfg.get("dropout_at", "all")),
            sparsify_output=bool(cfg.get("sparsify_output", True)),
        )

    def make_rule(self) -> BackwardRule:
        return make_rule(self.rule, scope=self.scope, **self.params)

    def layer_rules(self, n_layers: int) -> list[BackwardRule]:
        """One rule object per layer (rules may keep per-layer state)."""
        rules = [self.make_rule() for _ in range(n_layers)]
        if not self.sparsify_output:
            rules[-1] = make_rule("dense", scope=self.scope)
        return rules

    def tag(self) -> str:
        """Directory-safe identity of the method and every setting that changes results.

        ``topk-k40``, ``partial-k1_40-k2_200``, ``dropout-p0.4``, ``topk-k40-sample``.
        """
        parts = [self.name]
        # A parameter given as null is the rule's default and names nothing.
        parts += [_param_tag(key, value) for key, value in sorted(self.params.items()) if value is not None]
        if self.dropout > 0.0:
            parts.append(f"p{self.dropout:g}")
            if self.dropout_at != "all":
                parts.append(f"at_{self.dropout_at}")
        if self.rule != "dense" and self.scope != "batch":
            parts.append(self.scope)
        if not self.sparsify_output:
            parts.append("denseout")
        return "-".join(parts)


def _param_tag(key: str, value: Any) -> str:
    if isinstance(value, (list, tuple)):
        text = "_".join(_value_text(v) for v in value) or "none"
    else:
        text = _value_text(value)
    # k40, k1_40, x_scope_sample: a number follows its key, a word is set apart from it.
    sep = "_" if key[-1].isdigit() or isinstance(value, str) else ""
    return f"{key}{sep}{text}".replace("/", "_").replace(" ", "")


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as plain Python values (an OmegaConf list becomes a list)."""
    if isinstance(params, DictConfig):
        return dict(OmegaConf.to_container(params, resolve=True))  # type: ignore[arg-type]
    return dict(params)
