"""The thesis' grid: its datasets and architectures, its four methods, their tags and the baseline.

Thesis 9.1.2: Fashion-MNIST on 25 architectures, ``l1..l5 x 64, 128, 256, 512, 1024``
(listed width by width, the order of its Tables 9.3-9.52); MNIST on ``l1-512`` only (9.1.1,
meProp's setup). Four methods, each a ``conf/method`` file: symmetric training with dropout
0.4 (the baseline of every comparison), top-k asymmetry (k=40), complete sparsification
(k=170) and partial connectivity (k1=40, k2=200).

The methods' tags are derived from their config files, never written here: change ``k`` in
``conf/method/topk.yaml`` and the status, the sweep's cells and the report's comparison with
the thesis follow (the thesis' own numbers stay those of its k=40).

A method file may also fix a setting outside the method (``conf/method/dropout.yaml`` is a
``# @package _global_`` file that sets ``dataset.scaling: standard``, the reading the readings
panel chose for the baseline); the method's grid tag then carries it the way a run folder does
(``dropout-p0.4+standard``, `config.settings_suffix`), so a run of the other setting is never
counted as a grid run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from asym_sweep.config import CONF_DIR, SETTING_TAGS, schema_settings, settings_suffix
from asym_sweep.methods import MethodConfig
from asym_sweep.model import Arch
from asym_sweep.rules import list_rules

DEPTHS = (1, 2, 3, 4, 5)
WIDTHS = (64, 128, 256, 512, 1024)
FASHION_ARCHS: tuple[str, ...] = tuple(Arch(depth, width).name for width in WIDTHS for depth in DEPTHS)
ARCHS = {"fashion_mnist": FASHION_ARCHS, "mnist": ("l1-512",)}
# In the presets' sweep order; the report lists them in the thesis' table order (`ROW_ORDER`).
METHODS = ("dropout", "topk", "complete", "partial")
ROW_ORDER = ("dropout", "topk", "partial", "complete")
BASELINE = "dropout"
# The readings panel (`+experiment=readings`): six cells spanning depth 1-5 and width
# 64-1024, two of width 1024, and l3-512, where the thesis' partial connectivity beats top-k.
PANEL = ("l5-64", "l2-128", "l1-256", "l3-512", "l1-1024", "l2-1024")
GRID_SEEDS = 5  # seeds 0-4 of every grid cell (9.1.2: five runs per cell); RunConfig.n_seeds's default
PANEL_SEEDS = 3  # seeds 0-2 of every panel cell (the readings and rules presets' n_seeds)
LABELS = {
    "dropout": "Symmetric dropout",
    "topk": "Top-k asymmetry",
    "partial": "Partial connectivity",
    "complete": "Complete sparsification",
}
# Settings that change a run's numbers but not its operations: a run of the baseline at another
# value does the same work, so it may serve as the time baseline (`ThesisGrid.time_baselines`).
COST_NEUTRAL_SETTINGS = frozenset({"dataset.scaling"})
# Options of the experiment, not of a method (issue: one protocol for every method): all four
# methods take the same value, chosen by their joint agreement with the thesis on the readings
# panel (`report.readings.joint_table`, docs/methods.md "Experiment-wide options"). Each maps to
# the values measured for all four methods. The reported epoch is experiment-wide too (the
# report's --epoch), and the batch size and epochs, which no method file may change.
EXPERIMENT_WIDE = {"dataset.scaling": ("unit", "standard")}
# How a label names a setting a method file fixes (`ThesisGrid.label`).
SETTING_WORDS = {("dataset.scaling", "standard"): "standardised inputs"}


def readings(conf_dir: Path = CONF_DIR) -> tuple[str, ...]:
    """Every reading of ``conf/reading/`` (one file each), cheapest-first order is the sweep's."""
    return tuple(sorted(p.stem for p in (conf_dir / "reading").glob("*.yaml")))


def rule_methods(conf_dir: Path = CONF_DIR) -> tuple[str, ...]:
    """The rules experiment's methods (``+experiment=rules``): every ``conf/method`` file, grouped
    by its registered rule in the registry's order, so a rule joins by being registered and given
    a method file; a second file naming the same rule is a second setting (``swat_80.yaml``).
    Raises where a registered rule has no method file (it would be silently missing)."""
    files = sorted(p.stem for p in (conf_dir / "method").glob("*.yaml"))
    by_rule: dict[str, list[str]] = {}
    for name in files:
        by_rule.setdefault(str(method_node(name, conf_dir).rule), []).append(name)
    missing = [rule for rule in list_rules() if rule not in by_rule]
    if missing:
        raise ValueError(
            f"registered rule(s) {', '.join(missing)} have no conf/method file: add "
            f"conf/method/<name>.yaml with `rule: <rule>` and the source's default parameters"
        )
    return tuple(name for rule in list_rules() for name in by_rule[rule])


def _method_file(name: str, conf_dir: Path) -> DictConfig:
    path = conf_dir / "method" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (conf_dir / "method").glob("*.yaml")))
        raise ValueError(f"no method {name!r} in conf/method (there: {known})")
    return OmegaConf.load(path)


def _is_global(data: DictConfig) -> bool:
    # A `# @package _global_` method file holds a `method:` node; a plain one is that node.
    return isinstance(data.get("method"), DictConfig)


def method_node(name: str, conf_dir: Path = CONF_DIR) -> DictConfig:
    """The ``method`` node that ``conf/method/<name>.yaml`` defines (plain or global file)."""
    data = _method_file(name, conf_dir)
    return data.method if _is_global(data) else data


def method_from_conf(name: str, conf_dir: Path = CONF_DIR) -> MethodConfig:
    """The method defined by ``conf/method/<name>.yaml``."""
    return MethodConfig.from_config(method_node(name, conf_dir))


def _flat(node: DictConfig, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, DictConfig):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_from_conf(name: str, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The run settings (`config.SETTING_TAGS` keys) that ``conf/method/<name>.yaml`` fixes
    beside its ``method:`` node; {} for a plain method file."""
    data = _method_file(name, conf_dir)
    if not _is_global(data):
        return {}
    values = _flat(OmegaConf.masked_copy(data, [k for k in data if k != "method"]))
    allowed = set(SETTING_TAGS) - {"train.epochs"}  # epochs are the dataset's (9.1.1, 9.1.2)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ValueError(
            f"conf/method/{name}.yaml sets {', '.join(unknown)}: a method file may fix only "
            f"{', '.join(sorted(allowed))} beside its method node"
        )
    return values


@dataclass(frozen=True)
class ThesisGrid:
    """The thesis' methods as ``conf/method`` defines them now."""

    specs: dict[str, MethodConfig]  # method name -> its config
    # method name -> the run settings its file fixes (`settings_from_conf`), where any
    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        """Method name -> the tag of its grid runs' folders (``topk`` -> ``topk-k40``,
        ``dropout`` -> ``dropout-p0.4+standard``)."""
        return {
            name: spec.tag() + settings_suffix(self.settings.get(name, {}), schema_settings())
            for name, spec in self.specs.items()
        }

    def tags_with(self, settings: dict[str, Any]) -> dict[str, str]:
        """Method name -> the tag its runs get with ``settings`` in place of what its file fixes:
        ``tags_with({"dataset.scaling": "unit"})["dropout"]`` is ``dropout-p0.4``. The runs of one
        experiment-wide choice (`EXPERIMENT_WIDE`), one per method."""
        return {
            name: spec.tag() + settings_suffix({**self.settings.get(name, {}), **settings}, schema_settings())
            for name, spec in self.specs.items()
        }

    @property
    def baseline_tag(self) -> str:
        return self.tags[BASELINE]

    @property
    def same_cost_tags(self) -> dict[str, str]:
        """The tag of each method's runs at another value of a cost-neutral setting
        (`COST_NEUTRAL_SETTINGS`, the values of `EXPERIMENT_WIDE`) -> its grid tag: a timing taken
        at one value stands for the grid's runs (``dropout-p0.4+standard`` -> ``dropout-p0.4``)."""
        out: dict[str, str] = {}
        for key in sorted(COST_NEUTRAL_SETTINGS):
            for value in EXPERIMENT_WIDE.get(key, ()):
                for name, tag in self.tags_with({key: value}).items():
                    if tag != self.tags[name]:
                        out[tag] = self.tags[name]
        return out

    @property
    def time_baselines(self) -> tuple[str, ...]:
        """The baseline's grid tag, then that of the same method without its cost-neutral settings
        (``dropout-p0.4+standard``, ``dropout-p0.4``): the report's time-ratio denominators in
        order of preference (`report.aggregate.time_base`)."""
        settings = self.settings.get(BASELINE, {})
        kept = {key: value for key, value in settings.items() if key not in COST_NEUTRAL_SETTINGS}
        twin = self.specs[BASELINE].tag() + settings_suffix(kept, schema_settings())
        return tuple(dict.fromkeys((self.baseline_tag, twin)))

    def method_of(self, tag: str) -> str | None:
        """The thesis method whose tag this is, None for any other tag."""
        return next((name for name, t in self.tags.items() if t == tag), None)

    def label(self, tag: str) -> str:
        """``Top-k asymmetry k=40``; any other tag is its own label."""
        name = self.method_of(tag)
        if name is None:
            return tag
        spec = self.specs[name]
        if name == BASELINE:
            label = f"{LABELS[name]} {spec.dropout:g}"
        else:
            label = f"{LABELS[name]} " + ", ".join(f"{k}={v}" for k, v in spec.params.items())
        words = [
            SETTING_WORDS.get(item, f"{item[0]}={item[1]}")
            for item in self.settings.get(name, {}).items()
            if item[1] != schema_settings()[item[0]]
        ]
        return ", ".join([label, *words])

    def order(self, tags: Iterable[str]) -> list[str]:
        """The thesis' row order first, then any other tags alphabetically."""
        tags = set(tags)
        ours = [self.tags[name] for name in ROW_ORDER]
        return [t for t in ours if t in tags] + sorted(tags - set(ours))

    def cells(self, dataset: str, seeds: int) -> set[tuple[str, str, int]]:
        """``(arch, tag, seed)`` of every run of the grid on ``dataset``."""
        return {(a, t, s) for a in ARCHS.get(dataset, ()) for t in self.tags.values() for s in range(seeds)}


def load_grid(conf_dir: Path = CONF_DIR, methods: Iterable[str] = METHODS) -> ThesisGrid:
    """The thesis' four methods; ``methods=rule_methods()``: the rules experiment's."""
    methods = tuple(methods)
    return ThesisGrid(
        {name: method_from_conf(name, conf_dir) for name in methods},
        {name: settings_from_conf(name, conf_dir) for name in methods},
    )
