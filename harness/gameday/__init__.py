"""Game days: a plan of experiments run one after another against one deployment.

- :mod:`~harness.gameday.plan`: the plan file (a strict model)
- :mod:`~harness.gameday.prepare`: the plan read and every experiment loaded on the plan's
  deployment, before anything is deployed
- :mod:`~harness.gameday.reset` and :mod:`~harness.gameday.gate`: the reset between two
  experiments and the health gate that ends it
- :mod:`~harness.gameday.record`: ``gameday.json``
- :mod:`~harness.gameday.run`: the game day itself
- :mod:`~harness.gameday.report`: the game-day reports (``gameday.html``, ``junit.xml``,
  ``summary.md``)
- :mod:`~harness.gameday.command`: ``gpuchaos gameday``
"""
