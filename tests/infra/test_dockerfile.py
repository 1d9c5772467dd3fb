"""A light static check of infra/docker/Dockerfile: CUDA base, installed exactly like the Makefile, non-root,
model cache volume, default command; and that its ignore file keeps secrets and the venv out of the context."""

from __future__ import annotations

import re

import pytest

from tests.infra.helpers import ROOT

DOCKERFILE = ROOT / "infra/docker/Dockerfile"
IGNORE = ROOT / "infra/docker/Dockerfile.dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    out = []
    for line in joined.splitlines():
        if line.strip():
            op, _, args = line.strip().partition(" ")
            out.append((op.upper(), " ".join(args.split())))
    return out


def makefile_install() -> dict[str, str]:
    make = (ROOT / "Makefile").read_text()
    return {
        "torch": re.search(r"\$\(PIP\) (torch==\S+)", make).group(1),
        "chatterbox": re.search(r"--no-deps (chatterbox-tts==\S+)", make).group(1),
        "strip_torchaudio": str("torchaudio" in make and "lib/*.so" in make),
    }


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    ins = instructions(text)
    args = dict(a.split("=", 1) for op, a in ins if op == "ARG" and "=" in a)
    stages = [i for i, (op, _) in enumerate(ins) if op == "FROM"]
    final = ins[stages[-1] :]
    base = final[0][1].split()[0]
    base = args.get(base.strip("${}"), base)
    if not re.fullmatch(r"nvidia/cuda:[\w.-]*runtime[\w.-]*", base):
        problems.append(f"final base image {base} is not an nvidia/cuda runtime image")
    runs = [a for op, a in ins if op == "RUN"]
    make = makefile_install()
    pip_installs = [r for r in runs if re.search(r"\bpip install\b(?!.*--upgrade)", r)]
    for r in pip_installs:
        if "--no-deps" not in r and "--constraint infra/python/constraints.txt" not in r:
            problems.append(f"pip install without the constraints file: {r}")
    if not any(make["torch"] in r for r in pip_installs):
        problems.append(f"{make['torch']} (as in the Makefile) is not installed")
    if not any(all(p in r for p in ("plugins/livekit-plugins-parakeet", "plugins/livekit-plugins-chatterbox"))
               for r in pip_installs):  # fmt: skip
        problems.append("the two plugins are not installed")
    if not any(f"--no-deps {make['chatterbox']}" in r for r in pip_installs):
        problems.append(f"{make['chatterbox']} must be installed with --no-deps as in the Makefile")
    if make["strip_torchaudio"] == "True" and not any("torchaudio" in r and "lib/*.so" in r for r in runs):
        problems.append("torchaudio's .so files must be removed as in the Makefile")
    users = [a for op, a in final if op == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the final stage must run as a non-root USER")
    envs = " ".join(a for op, a in final if op == "ENV")
    if "HF_HOME=/models" not in envs or not any(op == "VOLUME" and "/models" in a for op, a in final):
        problems.append("HF_HOME=/models must be a VOLUME")
    exposed = {p for op, a in final if op == "EXPOSE" for p in a.split()}
    if not {"8080", "8081"} <= exposed:
        problems.append("EXPOSE 8080 8081")
    cmds = [a for op, a in final if op == "CMD"]
    if not cmds or cmds[-1] != '["voice-agent", "start"]':
        problems.append('CMD must be ["voice-agent", "start"]')
    return problems


def test_dockerfile() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("USER agent", "USER root", "non-root"),
        (
            "ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04",
            "ARG CUDA_IMAGE=python:3.12-slim",
            "runtime",
        ),
        ('CMD ["voice-agent", "start"]', 'CMD ["voice-agent", "serve"]', "CMD"),
        ("--no-deps chatterbox-tts==", "chatterbox-tts==", "--no-deps"),
        (
            "RUN pip install --constraint infra/python/constraints.txt torch",
            "RUN pip install torch",
            "constraints",
        ),
        ("VOLUME /models", "", "VOLUME"),
    ],
)
def test_dockerfile_problems_are_caught(old: str, new: str, expected: str) -> None:
    text = DOCKERFILE.read_text()
    assert old in text
    problems = dockerfile_problems(text.replace(old, new))
    assert any(expected in p for p in problems), problems


def test_copied_paths_exist_and_are_not_ignored() -> None:
    ignore = [ln.strip() for ln in IGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*", "allow-list: everything not re-included stays out of the build context"
    included = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    assert not {".env", ".venv", ".git"} & included
    for op, args in instructions(DOCKERFILE.read_text()):
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert any(source == inc or source.startswith(inc + "/") for inc in included), source
