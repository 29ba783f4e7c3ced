"""The docs name only what exists, and document every setting.

The documents: README.md, docs/*.md and bench/README.md. What is checked, by simple rules:

- **Paths.** An inline code span (`` `...` ``) whose first path segment is a top-level entry
  of the project (``pipeline/...``, ``tests/...``, ``deploy/...``, ``luigi.cfg``...) names a
  path that exists (``*`` globs must match something; ``::test`` suffixes are dropped;
  outputs under a folder .gitignore lists, such as ``bench/out/``, are not checked), and
  so does every relative Markdown link target ``[text](target)``, with its ``#heading``.
- **make targets.** ``make X`` in an inline code span or a fenced code line: X is a target
  of the Makefile.
- **The CLI.** ``taxi-pipeline SUB --flag ...`` in an inline code span or a fenced code
  line: SUB is a sub-command of ``pipeline.ops.cli.parser()`` and each ``--flag`` up to a
  ``#`` comment is an option of SUB (or of ``taxi-pipeline`` itself).
- **Tasks.** ``luigi --module pipeline TASK`` in an inline code span or a fenced code line:
  TASK is a Luigi task the ``pipeline`` package exports.
- **Settings.** ``[section] key`` in prose or inline code (outside fenced blocks; the key
  right after the bracket and one space, ``retry_*`` as a prefix), and every ``key =``
  line under a ``[section]`` line of an ``ini`` fenced block: the key is in luigi.cfg, in a
  ``luigi.Config`` class (the pipeline's or luigi's own), or read by luigi's own code as
  ``config.get...("section", "key")``.
- **Every key documented.** Each key of each ``luigi.Config`` class of ``pipeline/config.py``
  appears in backticks under the ``## `[section]` `` heading of docs/configuration.md, and
  in the shipped luigi.cfg.
"""

from __future__ import annotations

import argparse
import configparser
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from luigi.task_register import Register

from pipeline.ops import cli
from tests.conftest import PROJECT
from tests.test_settings_defaults import _settings_classes

DOCS = sorted([PROJECT / "README.md", PROJECT / "bench" / "README.md",
               *(PROJECT / "docs").glob("*.md")])
# luigi's modules that declare the config classes of the sections luigi.cfg sets.
LUIGI_CONFIG_MODULES = ("luigi.interface", "luigi.scheduler", "luigi.worker", "luigi.retcodes",
                        "luigi.notifications", "luigi.metrics")

FENCE = re.compile(r"^\s*```")
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"(?:^|[\s;&(])make ([a-z][a-z0-9-]*)")
LUIGI_TASK = re.compile(r"luigi --module pipeline ([A-Za-z_]\w*)")
COMMAND = re.compile(r"(?:^|[\s/])taxi-pipeline((?: +[^\s#;&|>]+)+)")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
SETTING = re.compile(r"\[([a-z_]+)\][ \n]+`?([a-z_][a-z0-9_-]*)(\*?)")
INI_SECTION = re.compile(r"^\[([a-z_]+)\]\s*$")
LUIGI_READS = re.compile(r"get\w*\(\s*[\"']([a-z_]+)[\"']\s*,\s*[\"']([a-z_][a-z0-9_-]*)[\"']")
INI_KEY = re.compile(r"^([a-z_][a-z0-9_-]*)\s*=")


def _lines(doc: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line number, line, fence language or None when outside a fenced block)."""
    fence: str | None = None
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if FENCE.match(line):
            fence = None if fence is not None else (line.strip()[3:].strip() or "text")
            continue
        yield number, line, fence


def _prose(doc: Path) -> str:
    """The document without its fenced blocks (a setting may wrap onto the next line)."""
    return "\n".join(line for _, line, fence in _lines(doc) if fence is None)


def _spans(doc: Path) -> Iterator[tuple[int, str]]:
    """Inline code spans outside fenced blocks, and whole lines inside them."""
    for number, line, fence in _lines(doc):
        if fence is None:
            for span in SPAN.findall(line):
                yield number, span
        else:
            yield number, line


def _where(doc: Path, number: int) -> str:
    return f"{doc.relative_to(PROJECT)}:{number}"


def test_the_documents_are_there() -> None:
    names = {str(doc.relative_to(PROJECT)) for doc in DOCS}
    assert {"README.md", "bench/README.md", "docs/configuration.md", "docs/architecture.md",
            "docs/lake-and-tables.md", "docs/operations.md", "docs/performance.md",
            "docs/reliability.md", "docs/after-the-pipeline.md"} <= names


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation but ``-`` and
    ``_`` dropped, spaces as ``-``."""
    headings = [line.lstrip("#").strip() for _, line, fence in _lines(doc)
                if fence is None and line.startswith("#")] if doc.suffix == ".md" else []
    return {re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")
            for heading in headings}


def _ignored_folders() -> tuple[str, ...]:
    """Folders .gitignore lists (what runs write, e.g. ``bench/out/``, ``data/``)."""
    lines = (PROJECT / ".gitignore").read_text().split()
    return tuple(line.lstrip("/") for line in lines if line.endswith("/") and "*" not in line)


def test_every_path_named_exists() -> None:
    top = {entry.name for entry in PROJECT.iterdir() if not entry.name.startswith(".")}
    ignored = _ignored_folders()
    named, missing = 0, []
    for doc in DOCS:
        for number, line, fence in _lines(doc):
            candidates = [] if fence is not None else SPAN.findall(line)
            for span in candidates:
                path = span.split("::")[0].strip()
                if (not re.fullmatch(r"[\w.*/-]+", path) or path.split("/")[0] not in top
                        or path.startswith(ignored)):
                    continue
                named += 1
                if not (list(PROJECT.glob(path)) if "*" in path else (PROJECT / path).exists()):
                    missing.append(f"{_where(doc, number)}: `{span}`")
            for target in LINK.findall(line) if fence is None else []:
                if re.match(r"[a-z]+:|#", target):
                    continue
                named += 1
                path, _, anchor = target.partition("#")
                linked = doc.parent / path
                if not linked.exists():
                    missing.append(f"{_where(doc, number)}: link {target}")
                elif anchor and anchor not in _anchors(linked):
                    missing.append(f"{_where(doc, number)}: link {target}: no such heading")
    assert named > 50
    assert not missing, "\n".join(missing)


def test_every_make_target_named_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (PROJECT / "Makefile").read_text(),
                             re.MULTILINE))
    named, missing = 0, []
    for doc in DOCS:
        for number, span in _spans(doc):
            for target in MAKE.findall(span):
                named += 1
                if target not in targets:
                    missing.append(f"{_where(doc, number)}: make {target}")
    assert named >= 5
    assert not missing, "\n".join(missing)


def _options(p: argparse.ArgumentParser) -> set[str]:
    return {flag for action in p._actions for flag in action.option_strings}


def test_every_cli_command_and_flag_named_exists() -> None:
    top = cli.parser()
    subs: dict[str, argparse.ArgumentParser] = {}
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            subs.update(action.choices)
    assert {"ingest", "backfill", "catch-up", "refresh", "status", "scheduler"} <= set(subs)
    named, wrong = 0, []
    for doc in DOCS:
        for number, span in _spans(doc):
            for words in COMMAND.findall(span):
                sub = words.split()[0]
                if sub.startswith("--"):
                    flags, allowed = FLAG.findall(words), _options(top)
                elif sub in subs:
                    flags, allowed = FLAG.findall(words), _options(top) | _options(subs[sub])
                elif re.fullmatch(r"[a-z][a-z-]*", sub):
                    wrong.append(f"{_where(doc, number)}: taxi-pipeline {sub}: no such command")
                    continue
                else:
                    continue
                named += 1
                wrong += [f"{_where(doc, number)}: taxi-pipeline {sub} {flag}: no such flag"
                          for flag in flags if flag not in allowed]
    assert named > 30
    assert not wrong, "\n".join(wrong)


def test_every_luigi_task_named_exists() -> None:
    import pipeline

    named, missing = 0, []
    for doc in DOCS:
        for number, span in _spans(doc):
            for name in LUIGI_TASK.findall(span):
                named += 1
                task = getattr(pipeline, name, None)
                if not (isinstance(task, type) and issubclass(task, luigi.Task)):
                    missing.append(f"{_where(doc, number)}: luigi --module pipeline {name}")
    assert named >= 5
    assert not missing, "\n".join(missing)


def _known_settings() -> dict[str, set[str]]:
    """Section -> keys: luigi.cfg's, and every luigi.Config class's (underscores)."""
    known: dict[str, set[str]] = {}
    shipped = configparser.RawConfigParser()
    assert shipped.read(PROJECT / "luigi.cfg")
    for section in shipped.sections():
        known.setdefault(section, set()).update(shipped.options(section))
    for module in LUIGI_CONFIG_MODULES:
        importlib.import_module(module)
    for cls in Register._get_reg().values():
        if isinstance(cls, type) and issubclass(cls, luigi.Config):
            known.setdefault(cls.get_task_family(), set()).update(
                name for name, _ in cls.get_params())
    # Keys luigi's code reads directly, e.g. config.getint("core", "rpc-retry-attempts", 3).
    for source in Path(luigi.__file__).parent.rglob("*.py"):
        for section, key in LUIGI_READS.findall(source.read_text()):
            known.setdefault(section, set()).add(key)
    return {section: {key.replace("-", "_") for key in keys}
            for section, keys in known.items()}


def test_every_setting_named_exists() -> None:
    known = _known_settings()

    def check(section: str, key: str, prefix: bool) -> bool:
        keys = known.get(section, set())
        key = key.replace("-", "_")
        return any(k.startswith(key) for k in keys) if prefix else key in keys

    named, unknown = 0, []
    for doc in DOCS:
        for section, key, star in SETTING.findall(_prose(doc)):
            named += 1
            if not check(section, key, bool(star)):
                unknown.append(f"{doc.relative_to(PROJECT)}: [{section}] {key}{star}")
        section = None
        for number, line, fence in _lines(doc):
            if fence != "ini":
                continue
            if match := INI_SECTION.match(line):
                section = match.group(1)
            elif (match := INI_KEY.match(line)) and section:
                named += 1
                if not check(section, match.group(1), False):
                    unknown.append(f"{_where(doc, number)}: [{section}] {match.group(1)}")
    assert named > 50
    assert not unknown, "\n".join(unknown)


def _configuration_sections() -> dict[str, str]:
    """docs/configuration.md: `## `[section]`` heading -> the text up to the next ## heading."""
    text = (PROJECT / "docs" / "configuration.md").read_text()
    parts = re.split(r"^## `\[([a-z_]+)\]`.*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


@pytest.mark.parametrize("cls", _settings_classes(), ids=lambda cls: cls.get_task_family())
def test_every_pipeline_setting_is_documented(cls: type[luigi.Config]) -> None:
    section = cls.get_task_family()
    text = _configuration_sections().get(section)
    assert text is not None, f"docs/configuration.md has no ## `[{section}]` heading"
    undocumented = [f"[{section}] {name} is not in docs/configuration.md"
                    for name, _ in cls.get_params() if f"`{name}`" not in text]
    assert not undocumented, "\n".join(undocumented)


def test_every_pipeline_setting_is_in_the_shipped_luigi_cfg() -> None:
    """luigi.cfg comments every key (test_settings_defaults checks the values agree, but only
    of the keys the file gives)."""
    shipped = configparser.RawConfigParser()
    assert shipped.read(PROJECT / "luigi.cfg")
    absent = [f"[{cls.get_task_family()}] {name} is not in luigi.cfg"
              for cls in _settings_classes() for name, _ in cls.get_params()
              if not shipped.has_option(cls.get_task_family(), name)]
    assert not absent, "\n".join(absent)
