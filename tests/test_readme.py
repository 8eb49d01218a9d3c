"""The README's set-up commands and snippets say what a new user needs on a CPU-only machine."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_setup_commands_use_separate_environments() -> None:
    setup = [b.strip() for b in _blocks("bash")[:2]]
    venvs = [re.search(r"python3 -m venv (\S+)", cmd).group(1) for cmd in setup]
    assert venvs[0] != venvs[1], venvs
    assert "choicemarket demo" in setup[0]
    assert "pytest" in setup[1]


def test_test_command_installs_cpu_torch_before_the_extras() -> None:
    cmd = _blocks("bash")[1]
    torch_at = cmd.index("pip install torch")
    assert "download.pytorch.org/whl/cpu" in cmd[torch_at:]
    assert torch_at < cmd.index('".[dev,rl,ray,text]"')


def test_sb3_snippet_uses_one_torch_thread() -> None:
    snippets = [b for b in _blocks("python") if "stable_baselines3" in b]
    assert snippets, "the README shows how to train with Stable-Baselines3"
    for code in snippets:
        assert code.index("torch.set_num_threads(1)") < code.index(".learn(")
