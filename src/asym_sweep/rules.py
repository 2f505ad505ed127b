"""The catalogue of backward rules: importing this module registers every one of them.

A rule is a `asym_sweep.sparse.BackwardRule` subclass decorated with
``@register_rule("<name>")``, plus ``conf/method/<name>.yaml``. Rules of the
thesis live in ``sparse.py``; the others in one module per source document:

* ``swat.py``: SWAT and SAW (sparse weights and activations; seeds/002);
* ``meprop.py``: meProp's variants: k as a fraction, annealed k, norm-limited k, random k (seeds/003, 002);
* ``vrpge.py``: learned neuron masks with two sampled sub-networks (seeds/004).

A new module of rules is added to the import below.
"""

from asym_sweep import meprop, sparse, swat, vrpge  # noqa: F401  (registration side effect)

RULES = sparse.RULES
