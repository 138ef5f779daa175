"""`lamina serve`'s overload options reach the server and put the limits in force."""

from __future__ import annotations

from click.testing import CliRunner

from lamina.cli import main
from lamina.index import limits


def test_serve_options_reach_run_and_configure_the_limits(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("lamina.service.server.run", lambda *args, **kwargs: seen.update(kwargs))
    saved = limits.current()
    try:
        result = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--drain-seconds", "1.5",
                                           "--write-workers", "3", "--write-queue", "0", "--no-preload",
                                           "--max-text-bytes", "2048", "--max-ef-k", "5000"])
        assert result.exit_code == 0, result.output
        assert (seen["drain"], seen["write_workers"], seen["write_queue"], seen["preload"]) == (1.5, 3, 0, False)
        assert limits.current() == limits.Limits(max_text_bytes=2048, max_ef_k=5000)
        assert not any(name.startswith("max_") for name in seen)
    finally:
        limits.configure(saved)
