"""The harness's Chaos Toolkit extension: actions, probes and controls.

Activities reach the running platform through :mod:`harness.chaos.context`, which
``gpuchaos run`` sets up before it hands the experiment to chaoslib.
"""
