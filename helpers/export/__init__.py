"""Export: execute the sheets, print them to PDF, merge them (``python -m helpers.export``).

- ``execute``: run a notebook with nbclient, one progress line per cell, a run record at the end;
  a failure or a timeout names the notebook, the cell and the error.
- ``cache``: the keys that decide whether a sheet must run again or be printed again, and the store.
- ``build``: one sheet through the cache (reuse, print from stored outputs, or execute).
- ``browser``: nbconvert's webpdf printed by an installed Chromium with a local MathJax, offline.
- ``tidy``: outputs made fit for paper (progress bars to their final state, huge outputs trimmed).
- ``bundle``: submission zips (notebook, PDF, manifest) and their verification.
- ``provenance``: kit version, git commit, package versions, without importing torch.
- ``reproduce``: reference tables of full-profile runs collected into docs/REPRODUCTION.md.
- ``cli``: the command line (export, ``submit``, ``verify``, ``reproduce``) and the summary table.
"""
