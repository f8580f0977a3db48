"""``rgsd demo``: the whole idea end to end on the embedded offline model (see :mod:`rgsd.demo.run`).

``run`` runs the stages (and, with GRPO, calls :func:`rgsd.compare.run.run_compare`), ``cli`` is the command,
``protocol`` holds the measurement protocol the demo and the ablation study share, ``report`` the table,
plots and report.md.
"""

from rgsd.demo.run import RECIPE, DemoSettings, run_demo

__all__ = ["RECIPE", "DemoSettings", "run_demo"]
