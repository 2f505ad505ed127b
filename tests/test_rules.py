"""Every registered rule, looped over as timm tests every registered model: the behaviour all rules
share, checked with no per-rule code, so a new rule is tested the moment it is registered.

Each rule runs at the parameters of the ``conf/method`` file that names it (every rule has one),
in every scope it accepts. The rule-specific references (independent masks in float64) are in
``test_sparse.py``, ``test_meprop.py``, ``test_swat.py`` and ``test_vrpge.py``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from asym_sweep.config import CONF_DIR
from asym_sweep.engine.autograd import apply_rule
from asym_sweep.engine.rule import RULES, SCOPES
from asym_sweep.grid import method_node
from asym_sweep.rules import list_rules, make_rule


def method_files() -> dict[str, dict]:
    # grid.method_node: a `# @package _global_` file (dropout's: it fixes the input scaling) holds a `method:` node
    return {p.stem: OmegaConf.to_container(method_node(p.stem)) for p in sorted((CONF_DIR / "method").glob("*.yaml"))}


def params_for(rule: str) -> dict:
    """The parameters of the first method file naming ``rule``."""
    return next(dict(m.get("params") or {}) for m in method_files().values() if m["rule"] == rule)


CASES = [(rule, scope) for rule in list_rules() for scope in SCOPES]


def build(rule: str, scope: str):
    try:
        return make_rule(rule, scope=scope, **params_for(rule))
    except ValueError as err:  # e.g. threshold reuse exists in the batch scope only
        pytest.skip(f"{rule} refuses scope={scope}: {err}")


def inputs(dtype: torch.dtype, seed: int = 0, n_in: int = 90, n_out: int = 70):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(12, n_in, generator=gen, dtype=torch.float64)
    w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) * 0.1
    b = torch.randn(n_out, generator=gen, dtype=torch.float64)
    g = torch.randn(12, n_out, generator=gen, dtype=torch.float64)
    # The float32 values, and the same values widened exactly for the float64 run.
    return [t.float().to(dtype).requires_grad_(t is not g) for t in (x, w, b, g)]


def run(rule_obj, dtype: torch.dtype, seed: int = 0, shape: tuple[int, int] = (90, 70)):
    x, w, b, g = inputs(dtype, seed, *shape)
    torch.manual_seed(123)  # rules that draw at random draw the same
    y = apply_rule(rule_obj, x, w, b)
    y.backward(g)
    return y, x.grad, w.grad, b.grad


def test_every_rule_has_a_method_file_and_every_file_names_a_rule():
    named = {m["rule"] for m in method_files().values()}
    assert named == set(RULES), (
        f"rules without a conf/method file: {set(RULES) - named}; files naming no rule: {named - set(RULES)}"
    )


@pytest.mark.parametrize("rule,scope", CASES)
def test_forward_is_f_linear_where_the_rule_keeps_the_forward(rule, scope):
    r = build(rule, scope)
    x, w, b, _ = inputs(torch.float32)
    y = apply_rule(r, x, w, b)
    if type(r).dense_forward:
        assert torch.equal(y, F.linear(x, w, b))
    else:  # the rule sparsifies the forward's weight (SWAT): the forward is F.linear with that weight
        assert torch.equal(y, F.linear(x, r.forward_weight(w), b))


@pytest.mark.parametrize("rule,scope", CASES)
def test_gradients_match_the_rule_in_float64(rule, scope):
    """The float32 computation (compact products, integer-key top-k, reused buffers) against the
    same rule on the same values in float64."""
    y32, *grads32 = run(build(rule, scope), torch.float32)
    y64, *grads64 = run(build(rule, scope), torch.float64)
    torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-5)
    for a, b in zip(grads32, grads64):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rule,scope", CASES)
def test_the_same_inputs_give_the_same_gradients(rule, scope):
    first, second = run(build(rule, scope), torch.float32), run(build(rule, scope), torch.float32)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


TINY = (3, 2)  # a layer every k of the method files covers


def _keeps_all(rule: str, scope: str) -> bool:
    try:
        return make_rule(rule, scope=scope, **params_for(rule)).keeps_everything(*TINY)
    except ValueError:
        return False


@pytest.mark.parametrize("rule,scope", [c for c in CASES if _keeps_all(*c)])
def test_a_rule_that_says_it_keeps_everything_is_dense_backprop(rule, scope):
    """Layers whose rule keeps everything run on PyTorch's own autograd (`model.SparseLinear`):
    that is only right if the rule's own backward is dense backprop there."""
    shape = TINY
    _, *grads = run(build(rule, scope), torch.float64, shape=shape)
    _, *dense = run(make_rule("dense", scope=scope), torch.float64, shape=shape)
    for a, b in zip(grads, dense):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rule", list_rules())
def test_bad_parameters_raise_value_error(rule):
    fields = [f.name for f in dataclasses.fields(RULES[rule]) if f.name != "scope"]
    good = params_for(rule)
    with pytest.raises(ValueError, match="does not take"):
        make_rule(rule, **good, not_a_parameter=1)
    with pytest.raises(ValueError, match="unknown scope"):
        make_rule(rule, scope="layer", **good)
    for name in fields:
        for bad in ("x", -1):
            with pytest.raises(ValueError):
                make_rule(rule, **{**good, name: bad if not isinstance(good.get(name), list) else [bad]})


def test_a_rule_module_registers_its_rules_on_import():
    """A newcomer's rule is one module in rules/ (listed in rules/__init__.py) and one conf/method file."""
    modules = {cls.__module__ for cls in RULES.values()}
    assert modules == {f"asym_sweep.rules.{m}" for m in ("thesis", "meprop", "swat", "vrpge")}
    assert Path(CONF_DIR / "method").is_dir()


def test_the_readme_example_rule_registers_builds_and_computes(tmp_path):
    # In its own process: registering it here would add a rule without a method file to the registry.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("**Adding a rule**") :]
    example = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 10)]
    check = """
import torch
from asym_sweep.engine.autograd import apply_rule
from asym_sweep.rules import make_rule

x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
apply_rule(make_rule("relative_threshold", scope="sample", ratio=0.0), x, w, None).pow(2).sum().backward()
dense = [t.grad.clone() for t in (x, w)]
x.grad = w.grad = None
torch.nn.functional.linear(x, w).pow(2).sum().backward()
assert all(torch.allclose(a, t.grad) for a, t in zip(dense, (x, w))), "ratio 0 keeps everything: dense backprop"
x.grad = w.grad = None
y = apply_rule(make_rule("relative_threshold", scope="sample", ratio=1.0), x, w, None)
y.pow(2).sum().backward()
g = 2 * y.detach()
kept = g * (g.abs() == g.abs().amax(1, keepdim=True))  # ratio 1: each example's largest only
assert torch.allclose(w.grad, kept.t() @ x.detach()) and torch.allclose(x.grad, kept @ w.detach())
try:
    make_rule("relative_threshold", ratio=2.0)
except ValueError as err:
    print("refused:", err)
"""
    script = tmp_path / "example.py"
    script.write_text(example + check)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: ratio must be in [0, 1], got 2.0" in done.stdout
