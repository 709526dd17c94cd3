"""Statistics for robot evaluations: intervals, comparisons, aggregation, planning.

numpy / scipy / statsmodels / standard library only; never imports torch.
"""
