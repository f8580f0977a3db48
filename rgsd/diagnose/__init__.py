"""``rgsd diagnose``: is a rubric-score gain real? Reward-hacking diagnostics across a run's checkpoints.

Modules: :mod:`checkpoints` (find and load step checkpoints of RGSD and GRPO runs), :mod:`responses`
(generate once per checkpoint, cached on disk), :mod:`metrics` (pure statistics: scores with CIs, slope,
exploitation rate, pairwise win rate, length correlation), :mod:`asking` (free-form questions through the
judge layer's client, cache and retries), :mod:`pairwise` and :mod:`taxonomy` (the two new judge prompts),
:mod:`core` (grading and assembling the diagnostics), :mod:`report` (json, Markdown, plots, table) and
:mod:`cli`.
"""
