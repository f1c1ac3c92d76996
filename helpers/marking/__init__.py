"""``make mark``: written answers marked by rubric in a local web page, and the gradebook with every point.

- ``answers``: a graded class (``build/grades``) and its sheets (``dist/``) read into answers to mark;
- ``render``: an answer, as the student wrote it, into safe HTML (markdown, math, images, referred outputs);
- ``store``: the marking store (SQLite in WAL mode): rubrics, marks, the audit log;
- ``server``: the marking page and its JSON API (Starlette on uvicorn);
- ``transfer``: marks as CSV (export, import) and rubrics as text for the masters;
- ``merge``: the gradebook and feedback with the written marks in them;
- ``cli``: ``python -m helpers.marking`` (``make mark``).
"""
