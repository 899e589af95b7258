"""Incident drills: ``gpuchaos drill`` runs a hidden fault drawn from a drill pack under live
traffic, serves a live page from which the trainee acknowledges, diagnoses and mitigates on
the real platform, and writes a scored debrief (``drill.json``, ``debrief.html``).

Modules: :mod:`~harness.drill.pack` (the pack file), :mod:`~harness.drill.pick` (the seeded
draw), :mod:`~harness.drill.document` (the scenario as an experiment for the runner),
:mod:`~harness.drill.view` (what the trainee may see), :mod:`~harness.drill.actions` and
:mod:`~harness.drill.panel` (what the trainee does), :mod:`~harness.drill.herrings`,
:mod:`~harness.drill.facilitator`, :mod:`~harness.drill.run` (one drill end to end),
:mod:`~harness.drill.damage`, :mod:`~harness.drill.score`, :mod:`~harness.drill.outcome` and
:mod:`~harness.drill.debrief` (the debrief), :mod:`~harness.drill.command` and
:mod:`~harness.drill.act` (the command line).
"""
