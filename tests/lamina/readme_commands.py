"""The shell commands of README.md that talk to `make run`'s server (127.0.0.1:50051 / :8080)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
GRPC, HTTP = "127.0.0.1:50051", "127.0.0.1:8080"
# commands that change who may call (the first key turns auth on) or hold a placeholder key
SKIP = re.compile(r"\bkeys\b|lk_\.\.\.|LAMINA_API_KEY=")


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def commands(block: str) -> list[str]:
    """The block's commands as bash will read them: a line ending in a backslash or inside an open quote
    goes on on the next line (shlex decides); comments stay, bash drops them."""
    out, pending = [], ""
    for line in block.splitlines():
        pending = f"{pending}\n{line}" if pending else line
        if pending.rstrip().endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            continue
        if words:
            out.append(pending)
        pending = ""
    return out


def server_commands(readme: Path = README) -> list[str]:
    """Commands that target the demo server, in README order."""
    found = []
    for block in shell_blocks(readme.read_text()):
        for command in commands(block):
            if command.startswith((".venv/bin/lamina ", "curl ")) and (GRPC in command or HTTP in command) \
                    and not SKIP.search(command):
                found.append(command)
    return found


if __name__ == "__main__":
    for command in server_commands():
        print(command)
