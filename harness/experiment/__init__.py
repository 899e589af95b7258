"""Experiments: read a file, resolve its configuration, and check everything about it before
anything is deployed (see :mod:`harness.experiment.load` for the order of the checks).

- :mod:`~harness.experiment.document`: the file itself (kind, size, encoding, YAML limits,
  duplicate keys)
- :mod:`~harness.experiment.chaos_model`: the Chaos Toolkit sections as strict models
- :mod:`~harness.experiment.modules`: the modules its activities and controls may import
- :mod:`~harness.experiment.activities`: faults against the spec, targets, the machine
- :mod:`~harness.experiment.fields`: a pydantic error as one line naming the field
- :mod:`~harness.experiment.load`: :func:`load_experiment`, the one way in
"""

from harness.config import EXTENSION_NAME
from harness.experiment.load import Experiment, load_experiment, parse_vars

__all__ = ["EXTENSION_NAME", "Experiment", "load_experiment", "parse_vars"]
