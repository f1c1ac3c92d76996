"""Sheets as assignments, with otter-grader (``python -m helpers.assignments``).

- ``assign``: the master notebooks become student notebooks and autograders (``otter assign``).
- ``grade``: a folder of submissions becomes a gradebook and per-student feedback (``otter run``,
  one process per submission).
- ``plugin``: the kit's otter plugin, so that grading survives what students do to notebooks.
- after grading: ``roster`` (who handed in what), ``analysis`` and ``report`` (``make report``), ``lms``
  (``make export``: Canvas's and Moodle's import CSVs) and ``similarity`` (``make similarity``); ``answers``
  reads each question's answer out of a notebook, ``classgen`` generates a class for tests and benchmarks.
- ``cli``: the command line behind ``make assign``, ``make grade`` and the steps after it.

The format of the masters is read by ``helpers.master_format``.
"""
