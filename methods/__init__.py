"""The built-in distillation methods and the baselines they are compared with: one module per
method, each defining its frozen config dataclass (defaults = the paper's), its ``distill``
entry point and a ``bench.spec.method.Method`` describing them, registered by import path as
entry points of group ``distillbench.methods`` in pyproject.toml, as any plugin's are."""
