"""The thesis' own statements the report quotes beside our numbers, in one place: the claims
(`fidelity`) and the captions (`sections`) read them from here. Its tables' values are
``thesis_reference.csv``'s (`thesis.load_reference`)."""

# 9.5-9.6 and 10: the share of experiments where each method gave the best accuracy.
BEST_SHARES = "top-k 60%, partial 28%, symmetric 12%"
# 10.1: asymmetric training ahead of symmetric training with dropout.
BEATS_DROPOUT_SHARE = "78%"
# The time tables: top-k's backprop time over dropout's on most architectures.
TOPK_TIME_RATIO = "about 0.62 for top-k"
# 9.6: the best accuracy of all the experiments, and the table that shows it.
BEST_CELL = "l1-512 dropout (Table 9.33)"
