"""``rgsd compare``: RGSD vs judge-based GRPO on matched prompts and steps, judged by one evaluation judge.

:func:`rgsd.compare.run.run_compare` runs (or reads, with ``rgsd_run`` / ``grpo_run``) an RGSD run and a GRPO
run on the same data, steps, prompts per step, seed and response length; generates with the base model and
both final models on the evaluation set; grades all three with the same evaluation judge; and writes
``compare.md``, ``compare.json`` and two plots (rubric score against wall time and against training-time
judge calls). Its options are :class:`rgsd.compare.options.CompareOptions`; ``rgsd.compare.cli`` is the
command. Modules: ``options`` (the dataclasses), ``plan`` (matching the two runs), ``table`` (rows, table,
plots), ``run`` (the whole comparison).
"""
