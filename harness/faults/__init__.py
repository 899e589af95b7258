"""Fault injectors with guaranteed cleanup.

Every injected fault is written to a state file under a well-known folder before it takes
effect, and a small detached reverter process watches it: when the harness dies or the
fault's time-to-live runs out, the reverter undoes the fault (resumes stopped processes,
lifts lowered limits, kills hog and burner processes). ``gpuchaos cleanup`` reverts what a
dead run left behind. This package imports neither torch nor chaoslib, so the reverter and
the worker start fast.
"""
