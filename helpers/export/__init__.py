"""Export: execute the sheets, print them to PDF, merge them (``python -m helpers.export``).

- ``execute``: run a notebook with nbclient; a failure names the notebook, the cell and the error.
- ``browser``: nbconvert's webpdf printed by an installed Chromium with a local MathJax, offline.
- ``tidy``: outputs made fit for paper (progress bars to their final state, huge outputs trimmed).
- ``cli``: the command line, the per-sheet export, merging and the summary table.
"""
