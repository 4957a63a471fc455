# Sourced by scripts/test.sh: a second virtualenv, .venv-milvus25, with milvus-lite 2.5.1 (Milvus 2.5's core,
# the C++ Milvus Lite). Its import name is the same as the milvus-lite 3.x in .venv, so it cannot share it.
# milvus-lite 2.5.1 imports pkg_resources, which setuptools 81 dropped. Idempotent and quick: a venv whose
# milvus_lite imports is left alone (tests/support/lite25.py starts its server).
if ! .venv-milvus25/bin/python -c 'import milvus_lite.server' 2>/dev/null; then
  [ -x .venv-milvus25/bin/python ] || python3 -m venv --without-pip .venv-milvus25
  .venv/bin/uv pip install -q -p .venv-milvus25/bin/python "milvus-lite==2.5.1" "setuptools<81"
fi
