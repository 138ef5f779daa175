"""Torch's intra-op threads come from the process's core budget, an env var or a flag, set once."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from lamina import config
from lamina.index.errors import InvalidArgument
from lamina.retrieval.encoders import threads


@pytest.fixture
def restore_torch_threads(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv(threads.TORCH_THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "_applied", None)
    yield
    torch.set_num_threads(before)


def test_default_is_the_affinity_capped(monkeypatch, restore_torch_threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert threads.cores_available() == 3 and config.torch_threads() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert config.torch_threads() == threads.DEFAULT_TORCH_THREADS_CAP == 4


def test_flag_then_env_then_default(monkeypatch, restore_torch_threads):
    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "3")
    assert config.torch_threads() == 3 and config.torch_threads(2) == 2
    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "many")
    with pytest.raises(InvalidArgument, match="LAMINA_TORCH_THREADS must be an integer >= 1, got 'many'"):
        config.torch_threads()
    for bad in (0, -2, "1.5", True):
        with pytest.raises(InvalidArgument, match="integer >= 1"):
            config.torch_threads(bad)


def test_applied_once_before_the_first_model(monkeypatch, restore_torch_threads):
    import torch

    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "1")
    assert threads.applied_torch_threads() is None
    assert threads.ensure_torch_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv(threads.TORCH_THREADS_ENV, "2")  # later changes of the env do not re-apply
    assert threads.ensure_torch_threads() == 1 and torch.get_num_threads() == 1
    assert config.use_torch_threads(2) == 2 and torch.get_num_threads() == 2  # an explicit choice does


def test_the_cli_option_sets_it_for_the_command(tmp_path, monkeypatch, restore_torch_threads):
    import torch

    from lamina.cli import main

    result = CliRunner().invoke(main, ["--torch-threads", "1", "collections", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert os.environ[threads.TORCH_THREADS_ENV] == "1" and torch.get_num_threads() == 1
    result = CliRunner().invoke(main, ["--torch-threads", "0", "collections", "list", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "torch threads must be an integer >= 1, got 0" in result.output
