"""The engine: what runs a backward rule inside training, and what a rule is written against.

* ``rule.py``: the interface, the registry, parameter checks (the rule author's module);
* ``gradients.py``: a linear layer's gradient formulas and dense multiply-adds;
* ``autograd.py``: the autograd function that calls a layer's rule, and the gradient sink;
* ``fused.py`` (``fused.cpp``): the compiled fused backward of the thesis' batch-scope rules;
* ``procedure.py``: the training step (forward, backward through each layer's rule, optimizer).

Rules (``asym_sweep/rules/``) import the engine; the engine imports no rule.
"""
