"""The event-vs-chunk ablation driver (issue 13, item 6; docs/ablation.md).

    python -m wallwm_sim.ablation SPEC.yaml [key=value ...] [--stage train|eval|report|all|status]

A spec (:mod:`wallwm_sim.ablation.spec`) names arms (training-config overrides: event windows,
fixed windows of some length), training seeds, the samples every arm trains on, and the
closed-loop evaluation. Stages: ``train`` (:mod:`~wallwm_sim.ablation.runs`: every arm x seed
as a resumable training subprocess), ``eval`` (:mod:`~wallwm_sim.ablation.evaluation`: each
finished run's final EMA checkpoint in the simulator, in shards), ``report``
(:mod:`~wallwm_sim.ablation.report`: ``ablation.json``, ``ablation.md``, ``ablation.png``).
Every stage skips what is done, so the same command continues across sessions.
"""
