"""vla-eval: evaluation, statistics and training diagnostics for VLA robot policies.

Importing the package must stay cheap (no torch, numpy, scipy): `vla-eval wilson`
starts from here.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
