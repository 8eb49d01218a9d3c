"""The installed package is what the repository root imports: no folder there shadows it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_repository_root_does_not_shadow_the_package():
    assert not (ROOT / "choicemarket").exists()
    for args in (["-m", "choicemarket", "--help"], ["-c", "import choicemarket.envs"]):
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [sys.executable, "-c", "import choicemarket; print(choicemarket.__file__)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "src" in done.stdout or "site-packages" in done.stdout, done.stdout
