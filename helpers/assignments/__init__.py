"""Sheets as assignments, with otter-grader (``python -m helpers.assignments``).

- ``assign``: the master notebooks become student notebooks and autograders (``otter assign``).
- ``grade``: a folder of submissions becomes a gradebook and per-student feedback (``otter run``,
  one process per submission).
- ``plugin``: the kit's otter plugin, so that grading survives what students do to notebooks.
- ``cli``: the command line behind ``make assign`` and ``make grade``.

The format of the masters is read by ``helpers.master_format``.
"""
