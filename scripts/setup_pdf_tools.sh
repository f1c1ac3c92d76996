#!/bin/sh
# Install what `make pdf` needs outside Python: a Chromium to print HTML to PDF, a local MathJax
# so formulas render offline, and poppler-utils (pdftotext, pdfimages) for the PDF test.
# Debian/Ubuntu as root: installs with apt-get when something is missing.
# Anywhere else: prints the one command to run and exits non-zero.
set -eu

# fonts-dejavu-core: with --no-install-recommends a bare machine may have no text font at all.
# fonts-noto-color-emoji: otter's test results print ✅/❌ (and a random emoji on success).
APT_PACKAGES="chromium libjs-mathjax poppler-utils fonts-dejavu-core fonts-noto-color-emoji"

have_browser() {
    [ -n "${CHROMIUM_PATH:-}" ] && [ -x "${CHROMIUM_PATH}" ] && return 0
    for name in chromium chromium-browser google-chrome google-chrome-stable chrome; do
        command -v "$name" >/dev/null 2>&1 && return 0
    done
    [ -x "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome" ]
}

have_mathjax() {
    [ -f /usr/share/javascript/mathjax/MathJax.js ] || [ -f /usr/share/mathjax/MathJax.js ]
}

have_poppler() {
    command -v pdftotext >/dev/null 2>&1 && command -v pdfimages >/dev/null 2>&1
}

have_emoji_font() {
    # Only checked where fontconfig exists (Linux); elsewhere the system's emoji font is used.
    ! command -v fc-list >/dev/null 2>&1 || fc-list 2>/dev/null | grep -qi "emoji"
}

if have_browser && have_mathjax && have_poppler && have_emoji_font; then
    echo "PDF tools present: Chromium, MathJax, poppler-utils, an emoji font."
    exit 0
fi

if [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        # Ubuntu's chromium is a snap wrapper; google-chrome (or CHROMIUM_PATH) works there too.
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $APT_PACKAGES
        exit 0
    fi
    echo "Missing PDF tools. Run:  sudo apt-get install -y $APT_PACKAGES" >&2
    exit 1
fi

case "$(uname -s)" in
    Darwin)
        echo "Missing PDF tools. Run:  brew install --cask google-chrome && brew install poppler" >&2 ;;
    MINGW*|MSYS*|CYGWIN*)
        echo "Missing PDF tools. Run:  winget install Google.Chrome  (Edge also works; poppler is only needed by the tests)" >&2 ;;
    *)
        echo "Missing PDF tools. Install Chromium or Google Chrome (or set CHROMIUM_PATH), MathJax 2 and poppler-utils with your package manager, e.g.:  sudo dnf install chromium mathjax poppler-utils" >&2 ;;
esac
exit 1
