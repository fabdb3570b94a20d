"""The Docker image's files as a Docker user meets them: layer order, build context, user."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``path`` (relative, '/'-separated) is left out of the build context by one of
    ``patterns`` or lies under a folder that is (Docker's rule; no '!' patterns used here)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def test_requirements_are_installed_before_the_code_is_copied():
    steps = instructions()
    install = next(i for i, s in enumerate(steps) if "pip install" in s and "requirements" in s)
    code = next(i for i, s in enumerate(steps) if re.match(r"COPY (--\S+ )*\./? ", s))
    assert install < code, "a code edit would reinstall the requirements"
    copies_before = [s for s in steps[:install] if s.startswith("COPY")]
    assert copies_before == ["COPY requirements.txt /physionet/requirements.txt"]
    assert steps[-2:] == ["USER 1000", 'CMD ["python", "train_model.py", "--help"]']


def test_the_rehearsal_runs_the_requirements_install_line():
    script = (ROOT / "scripts" / "rehearse_image.sh").read_text()
    pattern = re.search(r"grep -o '([^']+)' Dockerfile", script).group(1)  # grep reads lines
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    first = next(m.group(0) for line in dockerfile if (m := re.search(pattern, line)))
    assert "-r requirements.txt" in first


def test_dockerignore_leaves_out_what_the_scripts_make():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-image/bin/python",
        "demo/model/manifest.json",
        "demo-docker/train/SYN0001.hea",
        "ecg_kit.egg-info/PKG-INFO",
        "team_code/__pycache__/harness.cpython-311.pyc",
        ".pytest_cache/README.md",
        ".ruff_cache/CACHEDIR.TAG",
    ]:
        assert ignored(path, patterns), path
    for path in ["train_model.py", "team_code/harness.py", "requirements.txt", "scripts/demo.sh"]:
        assert not ignored(path, patterns), path


def test_docker_demo_runs_as_the_calling_user():
    script = (ROOT / "scripts" / "docker_demo.sh").read_text()
    run = next(line for line in script.splitlines() if line.startswith("docker run"))
    assert '--user "$(id -u):$(id -g)"' in run
