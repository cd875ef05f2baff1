"""Every command the README (and docs/) shows is one the project accepts.

The shell blocks of README.md and docs/*.md, and the inline `kedro run ...` spans of those
pages, are read as commands. A `kedro run` (or `torchrun ... -m wpnas`) must name pipelines
of the registry, an environment folder under conf/, `--params` keys present in that
environment's merged parameters and `--load-versions` entries of its catalog; `kedro prune`
only its own options; `make` only targets and variables of the Makefile; `python
benchmarks/<script>.py` a script that exists. Sample commands that are wrong in each of
these ways must be refused, so the check cannot pass by checking nothing.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
#: Kedro commands the docs may show beside `run`: Kedro's own plugins and the project's `prune`.
OTHER_KEDRO_COMMANDS = {"viz", "mlflow", "prune", "jupyter", "catalog"}


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.argv)}"


# -- reading commands from Markdown -------------------------------------------------------

def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, body) of each fenced block in a shell language."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not match:
            i += 1
            continue
        indent, language, start = len(match.group(1)), match.group(2).lower(), i + 1
        i += 1
        body = []
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        if language in SHELL_LANGUAGES:
            blocks.append((start + 1, "\n".join(body)))
    return blocks


def split_commands(argv: list[str]) -> list[list[str]]:
    """One shell line into its simple commands (split at ;, &&, ||, |), leading VAR=value dropped."""
    commands, current = [], []
    for token in argv + [";"]:
        if token in {";", "&&", "||", "|"}:
            while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                current.pop(0)
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


def commands_in(text: str, page: str) -> list[Command]:
    found = []
    for start, body in shell_blocks(text):
        logical, first = "", None
        for offset, line in enumerate(body.splitlines()):
            if first is None:
                first = start + offset
            if line.rstrip().endswith("\\"):
                logical += line.rstrip()[:-1]
                continue
            logical += line
            if logical.strip() and not logical.lstrip().startswith("#"):
                for argv in split_commands(shlex.split(logical, comments=True)):
                    found.append(Command(page, first, tuple(argv)))
            logical, first = "", None
    # inline spans such as `kedro run --env smoke` or `make viz` in prose and tables
    outside_blocks = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    for number, line in enumerate(outside_blocks.splitlines(), 1):
        for span in re.findall(r"`((?:kedro|make|torchrun) [a-z-][^`]*|python benchmarks/[^`]*)`", line):
            if not re.search(r"[<\[]", span):  # `--pipelines=<name>`, `[--fast]`: patterns, not commands
                found.append(Command(page, number, tuple(shlex.split(span))))
    return found


def documented_commands() -> list[Command]:
    return [c for page in PAGES for c in commands_in(page.read_text(), str(page.relative_to(REPO)))]


# -- what the project accepts ----------------------------------------------------------------

@functools.cache
def pipeline_names() -> frozenset[str]:
    from wpnas.pipelines.registry import all_pipelines

    return frozenset(all_pipelines())


def environments() -> set[str]:
    return {p.name for p in (REPO / "conf").iterdir() if p.is_dir()}


@functools.cache
def merged(env: str | None, kind: str) -> dict[str, Any]:
    """The environment's merged parameters or catalog, read as `kedro run --env` reads them."""
    from kedro.config import OmegaConfigLoader

    from wpnas.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(REPO / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return dict(loader[kind])


def missing_key(params: dict[str, Any], key: str) -> str | None:
    """None when the dotted key exists, else its first missing prefix. A null or empty mapping
    (an open section such as base's `evaluation.network: {}` or `evaluation.data: null`)
    accepts any key below it; the typed parsers check those keys when a run starts."""
    node: Any = params
    for depth, part in enumerate(key.split(".")):
        if node is None or (isinstance(node, dict) and not node and depth > 0):
            return None
        if not isinstance(node, dict) or part not in node:
            return ".".join(key.split(".")[: depth + 1])
        node = node[part]
    return None


def is_space_option(key: str) -> bool:
    """`space.options.<space>.<option>`: options are kept per space, so an environment need not
    list a space to accept its options; the option must be a field of that space's options."""
    import dataclasses

    from wpnas.spaces import available_spaces, get_space

    parts = key.split(".")
    if len(parts) != 4 or parts[:2] != ["space", "options"] or parts[2] not in available_spaces():
        return False
    return parts[3] in {f.name for f in dataclasses.fields(get_space(parts[2]).opts)}


@functools.cache
def makefile() -> tuple[frozenset[str], frozenset[str]]:
    text = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.M))
    variables = set(re.findall(r"^([A-Z_][A-Z0-9_]*)\s*[?:+]?=", text, re.M))
    return frozenset(targets), frozenset(variables)


def option_values(args: list[str], *names: str) -> list[str]:
    """Values of --name=value / --name value (every occurrence)."""
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg.startswith(name + "="):
                values.append(arg[len(name) + 1:])
            elif arg == name and i + 1 < len(args):
                values.append(args[i + 1])
    return values


def check_run_options(args: list[str]) -> list[str]:
    """Problems with the options of a `kedro run` (or `python -m wpnas` under torchrun)."""
    problems = []
    envs = option_values(args, "--env", "-e")
    env = envs[-1] if envs else None
    if env is not None and env not in environments():
        return [f"--env {env}: no folder conf/{env}"]
    for value in option_values(args, "--pipelines", "--pipeline", "-p"):
        for name in filter(None, value.split(",")):
            if name not in pipeline_names():
                problems.append(f"pipeline {name!r} is not in the registry")
    params = merged(env, "parameters")
    for value in option_values(args, "--params"):
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, _ = item.partition("=")
            if not sep:
                problems.append(f"--params entry {item!r} has no '='")
            elif ((bad := missing_key(params, key.strip())) is not None
                  and missing_key(merged("base", "parameters"), key.strip()) is not None  # open in base
                  and not is_space_option(key.strip())):
                problems.append(f"--params key {key.strip()!r}: {bad!r} is not a setting of env {env or 'base'}")
    catalog = merged(env, "catalog")
    for value in option_values(args, "--load-versions"):
        for item in filter(None, value.split(",")):
            name = item.split(":", 1)[0]
            if name not in catalog:
                problems.append(f"--load-versions {name!r} is not a catalog entry")
    return problems


def check(argv: tuple[str, ...]) -> list[str]:
    """Problems with one command; commands the project does not own (ls, tar, pip) pass."""
    args = list(argv)
    program = Path(args[0]).name
    if program == "kedro":
        if len(args) < 2:
            return ["bare `kedro`"]
        if args[1] == "run":
            return check_run_options(args[2:])
        if args[1] not in OTHER_KEDRO_COMMANDS:
            return [f"`kedro {args[1]}` is not a command the project documents"]
        if args[1] == "prune":
            from wpnas.cli import prune

            known = {opt for param in prune.params for opt in param.opts}
            return [f"`kedro prune {a}` is not an option" for a in args[2:] if a.startswith("-") and
                    a.split("=")[0] not in known]
        return []
    if program == "torchrun":
        if "-m" in args and args[args.index("-m") + 1] == "wpnas":
            return check_run_options(args[args.index("-m") + 2:])
        return ["torchrun without `-m wpnas`"]
    if program == "make":
        targets, variables = makefile()
        problems = []
        for arg in args[1:]:
            name, sep, value = arg.partition("=")
            if sep:
                if name not in variables:
                    problems.append(f"make variable {name} is not set in the Makefile")
                elif name == "PIPELINE" and value not in pipeline_names():
                    problems.append(f"make PIPELINE={value}: not a pipeline")
                elif name == "ENV" and value not in environments():
                    problems.append(f"make ENV={value}: no folder conf/{value}")
            elif not arg.startswith("-") and arg not in targets:
                problems.append(f"make target {arg!r} is not in the Makefile")
        return problems
    if re.match(r"python(3(\.\d+)?)?$", program):
        scripts = [a for a in args[1:] if a.endswith((".py", ".sh"))][:1]
        if scripts and not (REPO / scripts[0]).is_file():
            return [f"{scripts[0]} does not exist"]
        if args[1:3] == ["-m", "pytest"]:
            paths = [a for a in args[3:] if not a.startswith("-") and "/" in a or a == "tests"]
            return [f"{p} does not exist" for p in paths if not (REPO / p).exists()]
        return []
    if program.endswith(".sh") and args[0].startswith("benchmarks/"):
        return [] if (REPO / args[0]).is_file() else [f"{args[0]} does not exist"]
    return []


# -- the tests -----------------------------------------------------------------------------

def test_the_pages_show_commands_of_every_kind_checked():
    """The README keeps its command blocks (and so this test keeps its teeth)."""
    readme = [c.argv[0] for c in documented_commands() if c.page == "README.md"]
    assert {"kedro", "make"} <= {Path(p).name for p in readme}
    assert sum(1 for c in documented_commands() if c.argv[:2] == ("kedro", "run")) >= 30


def test_every_documented_command_is_accepted():
    problems = [f"{command}\n    {problem}" for command in documented_commands() for problem in check(command.argv)]
    assert not problems, "commands the project would refuse:\n" + "\n".join(problems)


@pytest.mark.parametrize("line", [
    'kedro run --pipelines=serach',
    'kedro run --pipelines=warmup,evaluaton',
    'kedro run --env paper_dart',
    'kedro run --params "search.epochz=3"',
    'kedro run --params "search.wpnas.reward.b3=0.1"',
    'kedro run --env smoke --params "space.options.darts.channels=8"',
    'kedro run --params "space.name=darts,space.options.darts.layer=5"',
    'kedro run --pipelines=wpnas_search --load-versions=warmed_supernett:2026-11-28T10.00.00.000Z',
    'kedro prune --keep 3 --force',
    'kedro lint',
    'torchrun --standalone --nproc-per-node=2 -m wpnas --pipelines=serach',
    'make test-everything',
    'make run PIPELINE=serach',
    'make run ENV=cifar100',
    'make run PIPELNE=search',
    'python benchmarks/no_such_script.py --seeds 0',
    'OMP_NUM_THREADS=1 python benchmarks/search_seed.py --env cifar10',
])
def test_a_wrong_command_is_refused(line):
    commands = commands_in(f"```bash\n{line}   # a comment\n```\n", "sample.md")
    assert len(commands) == 1
    assert check(commands[0].argv), f"accepted a wrong command: {line}"


@pytest.mark.parametrize("line", [
    'kedro run --pipelines=warmup,search --params "run.distributed.nproc_per_node=2"',
    'kedro run --env paper_darts --pipelines=evaluation --params "evaluation.network.C=48,evaluation.data.root=/x"',
    'make run PIPELINE=warmup ENV=cifar10',
    'OMP_NUM_THREADS=1 python benchmarks/search_seeds.py --env cifar10 --seeds 0',
])
def test_a_right_command_passes(line):
    (command,) = commands_in(f"```bash\n{line}\n```\n", "sample.md")
    assert check(command.argv) == []


def test_continued_lines_and_inline_spans_are_read():
    text = ('Run `kedro run --env smoke --params space.name=nats_sss` first, then `make viz`.\n\n```bash\n'
            'kedro run --env paper_darts --params "evaluation.network.C=48,\\\nevaluation.network.layers=14"\n'
            'mkdir -p /tmp/x && kedro run --pipelines=search\n```\n')
    argvs = [c.argv for c in commands_in(text, "sample.md")]
    assert ("kedro", "run", "--env", "paper_darts", "--params",
            "evaluation.network.C=48,evaluation.network.layers=14") in argvs
    assert ("kedro", "run", "--pipelines=search") in argvs
    assert ("mkdir", "-p", "/tmp/x") in argvs
    assert ("kedro", "run", "--env", "smoke", "--params", "space.name=nats_sss") in argvs
    assert ("make", "viz") in argvs
