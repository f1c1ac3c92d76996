# Deep-learning course kit. Quick start: `make pdf` (run every sheet, export PDFs) and `make test`.
# Both create .venv and install everything on first use.

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
KIT_PROFILE ?= quick
NB       ?= $(sort $(wildcard notebooks/[0-9]*.ipynb))
OUT      ?= build/pdf
SMOKE_PDF ?= build/smoke-pdf
VIA      ?= webpdf
NB_TIMEOUT ?= 300
SUBMIT   ?= build/submit
DIST     ?= dist
GRADES   ?= build/grades
# make mark: the marking page's address and TAs (HOST=0.0.0.0 needs TAS=name1,name2: a token each);
# MARK_ARGS=--export-csv f.csv | --import-csv f.csv | --export-rubrics f.txt | --gradebook does that instead
HOST     ?= 127.0.0.1
PORT     ?= 8765
TAS      ?=
MARK_ARGS ?=
# make grade: seconds allowed per submission and per cell, submissions graded at once (default: every core)
GRADE_TIMEOUT ?= 900
CELL_TIMEOUT  ?= 300
JOBS     ?=
# make grade ROSTER=roster.csv: match submissions to students; make export LMS=canvas|moodle, Canvas's assignment
# ids as CANVAS_ASSIGNMENTS="sheet1=1234 sheet2=1235" (the number in each assignment's Canvas URL)
ROSTER   ?=
LMS      ?=
CANVAS_ASSIGNMENTS ?=
# make cluster: workers of the local Dask cluster, and the scheduler's port
WORKERS  ?= 2
SCHEDULER_PORT ?= 8786
# FORCE=1: execute every sheet even when the export cache holds its run.
FORCE_FLAG := $(if $(FORCE),--force,)

UNAME_S := $(shell uname -s)
UNAME_M := $(shell uname -m)
# The torch build that installs from local files on the course machines (Linux x86_64);
# elsewhere pip picks the right build for the laptop (see README: other platforms).
ifeq ($(UNAME_S)-$(UNAME_M),Linux-x86_64)
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
endif

STAMP := $(VENV)/.installed

.PHONY: help install pdf submit verify reproduce assign grade mark report export similarity cluster test unit smoke lab bench clean pdf-tools

help:
	@echo "make pdf    execute every notebook (KIT_PROFILE=$(KIT_PROFILE)) and export build/pdf/*.pdf"
	@echo "make submit export + one verifiable zip per sheet in $(SUBMIT)/ (make verify checks them)"
	@echo "make reproduce  run sheets in the full profile, reference tables into docs/REPRODUCTION.md"
	@echo "make assign student notebooks ($(DIST)/student/) and autograders ($(DIST)/autograder/) from the masters"
	@echo "make grade SUBMISSIONS=dir  grade handed-in notebooks or zips into $(GRADES)/gradebook.csv"
	@echo "make mark   mark written answers by rubric in a local page ($(GRADES)); MARK_ARGS=--gradebook merges the marks"
	@echo "make grade ... ROSTER=roster.csv  also match submissions to students (roster.json)"
	@echo "make report  $(GRADES)/report.html and report.pdf: questions, tests, totals, roster"
	@echo "make export LMS=canvas|moodle  the grades as the LMS's import CSV (after make grade ROSTER=...)"
	@echo "make similarity  $(GRADES)/similarity.html: answers that look alike, per question"
	@echo "make cluster  a Dask scheduler and WORKERS=$(WORKERS) workers here; export the KIT_SCHEDULER it prints"
	@echo "make test   unit tests + notebook smoke tests (KIT_PROFILE=smoke)"
	@echo "make lab    JupyterLab on the notebooks (make lab KIT_PROFILE=smoke for the fast profile)"
	@echo "make bench  run the benchmarks, results in benchmarks/RESULTS.md"
	@echo "make clean  remove build/, caches (keeps .venv and data/)"

install: $(STAMP)

# pip, not uv or poetry: those ignore the local torch files and download gigabytes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH_PINS) -e ".[dev]"
	# jsonschema's optional URI checker builds a grammar at import (2 s of CPU in every kernel that imports otter
	# or nbformat's validator: every sheet, every graded submission); nothing here validates URIs.
	$(PY) -m pip uninstall -y -q rfc3987-syntax || true
	touch $@

pdf-tools:
	bash scripts/setup_pdf_tools.sh

# Ends non-zero naming it when a sheet's run has an invariant ✗ (in every profile); the PDFs are still written.
pdf: $(STAMP) pdf-tools
	KIT_PROFILE=$(KIT_PROFILE) $(PY) -m helpers.export $(NB) --profile $(KIT_PROFILE) --out $(OUT) --via $(VIA) $(FORCE_FLAG)

submit: $(STAMP) pdf-tools
	$(PY) -m helpers.export submit $(NB) --profile $(KIT_PROFILE) --out $(OUT) --via $(VIA) --bundles $(SUBMIT) $(FORCE_FLAG)

verify: $(STAMP)
	$(PY) -m helpers.export verify $(SUBMIT)/*.zip

# The committed notebooks are the masters (otter-grader's format); dist/ is built from them, never edited.
ASSIGNED := $(DIST)/autograder/.assigned
assign: $(ASSIGNED)

$(ASSIGNED): $(STAMP) $(NB) notebooks/assignment.yml $(shell find helpers -name '*.py' -not -path '*/__pycache__/*')
	$(PY) -m helpers.assignments assign $(NB) --out $(DIST)
	touch $@

grade: $(ASSIGNED)
	@test -n "$(SUBMISSIONS)" || { echo "Say which folder to grade: make grade SUBMISSIONS=<folder of notebooks or submission zips>"; exit 2; }
	$(PY) -m helpers.assignments grade $(SUBMISSIONS) --autograders $(DIST)/autograder --out $(GRADES) \
		--timeout $(GRADE_TIMEOUT) --cell-timeout $(CELL_TIMEOUT) $(if $(JOBS),--jobs $(JOBS),)
	$(if $(ROSTER),$(PY) -m helpers.assignments roster $(ROSTER) --grades $(GRADES))

# After make grade: what the class did (HTML with every figure inline, and its PDF), the LMS's CSV, look-alikes.
report: $(STAMP)
	$(PY) -m helpers.assignments report --grades $(GRADES) --autograders $(DIST)/autograder

export: $(STAMP)
	@test -n "$(LMS)" || { echo "Say which LMS: make export LMS=canvas or make export LMS=moodle"; exit 2; }
	$(if $(ROSTER),$(PY) -m helpers.assignments roster $(ROSTER) --grades $(GRADES))
	$(PY) -m helpers.assignments export $(LMS) --grades $(GRADES) --autograders $(DIST)/autograder \
		$(foreach a,$(CANVAS_ASSIGNMENTS),--assignment-id $(a))

similarity: $(STAMP)
	$(PY) -m helpers.assignments similarity --grades $(GRADES) --autograders $(DIST)/autograder \
		--students $(DIST)/student --masters notebooks

# The marking page over the graded class in $(GRADES): prints its address and a token per TA; Ctrl-C stops it.
mark: $(ASSIGNED)
	$(PY) -m helpers.marking --grades $(GRADES) --dist $(DIST) --host $(HOST) --port $(PORT) \
		$(if $(TAS),--tas $(TAS),) $(MARK_ARGS)

# A scheduler and $(WORKERS) workers on this machine, until Ctrl-C: `export KIT_SCHEDULER=<the address it prints>`
# in another shell, and grids and make grade run on them. Real machines: README, "Running on a cluster".
cluster: $(STAMP)
	bash scripts/cluster.sh $(WORKERS) $(SCHEDULER_PORT) $(VENV)/bin

# The full profile is long on a CPU: NB= picks sheets, e.g. make reproduce NB=notebooks/01_backprop_autodiff.ipynb
reproduce: $(STAMP) pdf-tools
	$(PY) -m helpers.export reproduce $(NB) --via $(VIA) $(FORCE_FLAG)

test: unit smoke

unit: $(STAMP) pdf-tools
	$(PY) -m pytest tests -q -p no:cacheprovider

# Smoke runs use a fresh cache so every notebook really executes its experiments. The PDF step
# then prints them from that cache with --strict (anything wider than the page fails), every
# invariant of every run record must hold (helpers.checks), and the PDFs are checked: figures no
# wider than the text, every code word and table cell found by pdftotext.
smoke: $(STAMP) pdf-tools
	tmp=$$(mktemp -d) && export KIT_PROFILE=smoke KIT_CACHE=$$tmp && \
	$(PY) -m pytest --nbmake --nbmake-timeout=$(NB_TIMEOUT) -q -p no:cacheprovider $(NB) && \
	$(PY) -m helpers.export $(NB) --profile smoke --strict --out $(SMOKE_PDF) && \
	$(PY) -m helpers.checks $(SMOKE_PDF) && \
	KIT_SMOKE_PDF=$(SMOKE_PDF) $(PY) -m pytest -q -p no:cacheprovider tests/test_sheet_pdfs.py; \
	status=$$?; rm -rf $$tmp; exit $$status

# KIT_PROFILE (and every KIT_* setting) is read when the server starts: restart it to change them.
# Jupyter refuses to run as root without --allow-root (containers, course VMs).
lab: $(STAMP)
	KIT_PROFILE=$(KIT_PROFILE) $(VENV)/bin/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	for b in benchmarks/[a-z]*.py; do echo "== $$b"; $(PY) -m benchmarks.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf build dist .cache .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
