"""The wheel carries every subpackage under its import name (ARCHITECTURE.md, repository layout)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SUBPACKAGES = ["lamina", "lamina.index", "lamina.index.sparse", "lamina.index.spann", "lamina.retrieval", "lamina.retrieval.encoders", "lamina.rag",
               "lamina.rag.generators",
               "lamina.service", "lamina.service.v1", "lamina.bench"]


@pytest.mark.slow
def test_installed_wheel_imports_every_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True)
    (wheel,) = (tmp_path / "dist").glob("lamina-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lamina/index/store.py" in names and "lamina/service/v1/__init__.py" in names
    assert not any(name.startswith(("index/", "tests/", "retrieval/")) for name in names)
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # the wheel's copy must win over the editable install: put it first on sys.path
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        f"for name in {SUBPACKAGES!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), (name, module.__file__)\n"
        "import lamina.service.client, lamina.service.server, lamina.cli, lamina.bench.ann\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
