# Sourced by scripts/*.sh: create .venv and install the package with its test extra (idempotent).
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null
  .venv/bin/python -m pip install -q uv
fi
.venv/bin/uv pip install -q -p .venv/bin/python -e ".[test]"
