"""Generate the Python gRPC stubs in `lamina.service.v1` from `protos/lamina/v1/*.proto`.

    python -m lamina.service.codegen [--out DIR]

protoc derives Python import paths from proto paths, so `lamina/v1/points.proto` imports
`from lamina.v1 import common_pb2`; the stubs live in `lamina.service.v1`, so those imports are
rewritten. The generated files are committed (a wheel must not need grpcio-tools) and
`tests/service/test_stubs.py` checks that they match what this module generates today.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "protos"
PROTO_PACKAGE = "lamina/v1"  # proto files live under PROTO_ROOT / PROTO_PACKAGE
DEFAULT_OUT = Path(__file__).resolve().parent / "v1"
PYTHON_PACKAGE = "lamina.service.v1"

_IMPORT = re.compile(r"^(from|import) lamina\.v1(\b)", re.MULTILINE)
_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    """The proto files of the wire contract, sorted so that output does not depend on the file system."""
    return sorted((root / PROTO_PACKAGE).glob("*.proto"))


def rewrite_imports(source: str) -> str:
    """Point generated imports of `lamina.v1` at `lamina.service.v1`."""
    return _IMPORT.sub(lambda m: f"{m.group(1)} {PYTHON_PACKAGE}{m.group(2)}", source)


def generate(out: Path = DEFAULT_OUT, root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc over every proto and write the rewritten stubs into `out`; returns the files written."""
    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError as exc:  # a dev dependency: installed with `pip install lamina[test]`
        raise RuntimeError("grpcio-tools is needed to generate stubs: pip install grpcio-tools") from exc

    protos = proto_files(root)
    if not protos:
        raise RuntimeError(f"no .proto files under {root / PROTO_PACKAGE}")
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            # relative paths: protoc names descriptors (and reflection shows them) by these
            *(p.relative_to(root).as_posix() for p in protos),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
        for generated in sorted((Path(tmp) / PROTO_PACKAGE).iterdir()):
            if not generated.name.endswith(_SUFFIXES):
                continue
            target = out / generated.name
            target.write_text(rewrite_imports(generated.read_text()))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lamina.service.codegen", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    try:
        written = generate(args.out)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
