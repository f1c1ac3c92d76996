"""Where a local MathJax 2 is: the PDF export prints with it, and the marking page serves it. No network needed."""
from __future__ import annotations

from pathlib import Path

LOCAL_MATHJAX = (
    Path("/usr/share/javascript/mathjax/MathJax.js"),   # Debian/Ubuntu libjs-mathjax
    Path("/usr/share/mathjax/MathJax.js"),
)
MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"


def local_mathjax() -> Path | None:
    """The MathJax.js of a local MathJax 2 (pip jupyter-server-mathjax or the OS package), or None."""
    candidates = list(LOCAL_MATHJAX)
    try:
        import jupyter_server_mathjax
        candidates.insert(0, Path(jupyter_server_mathjax.__file__).parent / "static" / "MathJax.js")
    except ImportError:
        pass
    return next((path.resolve() for path in candidates if path.is_file()), None)
