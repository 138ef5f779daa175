"""The committed stubs in lamina.service.v1 are exactly what `python -m lamina.service.codegen` generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.service import codegen

pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate the stubs (pip install lamina[test])")

GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name.endswith(GENERATED)}


def test_committed_stubs_match_the_protos(tmp_path):
    codegen.generate(tmp_path)
    fresh = generated_files(tmp_path)
    committed = generated_files(codegen.DEFAULT_OUT)
    assert sorted(fresh) == sorted(committed), "stub files differ: run `python -m lamina.service.codegen`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: run `python -m lamina.service.codegen`"


def test_stubs_import_from_the_service_package():
    for name, source in generated_files(codegen.DEFAULT_OUT).items():
        text = source.decode()
        assert "from lamina.v1 " not in text and "import lamina.v1" not in text, name


def test_rewrite_imports_only_touches_lamina_v1():
    source = ("from lamina.v1 import common_pb2 as c\nfrom google.protobuf import struct_pb2\n"
              "x = 'from lamina.v1 import'\n")
    assert codegen.rewrite_imports(source) == (
        "from lamina.service.v1 import common_pb2 as c\nfrom google.protobuf import struct_pb2\n"
        "x = 'from lamina.v1 import'\n"
    )


def test_main_writes_into_out(tmp_path, capsys):
    assert codegen.main(["--out", str(tmp_path / "stubs")]) == 0
    assert (tmp_path / "stubs" / "points_pb2_grpc.py").exists()
    assert "points_pb2.py" in capsys.readouterr().out
