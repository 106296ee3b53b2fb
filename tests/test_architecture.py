"""The layout holds: the library owns every option (the CLI only parses and renders), and imports point one way."""

import ast
import inspect
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmscore"
# Stages below the scoring and training layers never import from them (no arrows back up).
LOWER = ("mmscore.io", "mmscore.images", "mmscore.encoders", "mmscore.model", "mmscore.errors", "mmscore.labels")
UPPER = ("mmscore.scoring", "mmscore.scorer", "mmscore.training", "mmscore.report", "mmscore.render", "mmscore.cli")


def _same(a, b) -> bool:
    return str(a) == str(b) if isinstance(a, Path) or isinstance(b, Path) else a == b


def _cli_parameters(command) -> dict:
    return {name: p.default for name, p in inspect.signature(command).parameters.items()}


def test_every_score_and_train_option_is_a_library_parameter_with_the_same_default():
    from mmscore import cli
    from mmscore.scorer import Scorer
    from mmscore.training import train

    library = {**inspect.signature(Scorer.__init__).parameters, **inspect.signature(Scorer.score_file).parameters}
    for name, default in _cli_parameters(cli.score).items():
        assert name in library, f"mmscore score --{name} is not a parameter of Scorer or Scorer.score_file"
        assert _same(library[name].default, default), (name, library[name].default, default)
    library = inspect.signature(train).parameters
    for name, default in _cli_parameters(cli.train).items():
        assert name in library, f"mmscore train --{name} is not a parameter of mmscore.training.train"
        assert _same(library[name].default, default), (name, library[name].default, default)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every mmscore module -> the mmscore modules it imports, at the top or inside functions."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmscore"):
                for alias in node.names:  # "from mmscore import defaults" imports a module
                    target = f"{node.module}.{alias.name}"
                    found.add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("mmscore")}
        graph[name] = {t for t in found if t in modules and t != name}
    return graph


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path, on_path, done = [], set(), set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        on_path.discard(path.pop())
        done.add(node)
        return None

    return visit(start)


def test_no_import_circles_and_no_imports_back_up():
    graph = _import_graph()
    graph["mmscore"] = set()  # the package's lazy `mmscore.Scorer` is the public door, not a dependency
    for module in graph:
        cycle = _cycle_from(module, graph)
        assert cycle is None, " -> ".join(cycle)
    for module, targets in graph.items():
        if module.startswith(LOWER):
            upward = sorted(t for t in targets if t.startswith(UPPER))
            assert not upward, f"{module} imports {upward} from a layer above it"


def test_the_cli_stays_thin():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) < 450


def _readme_row(readme: str, first_cell: str) -> str:
    rows = [line for line in readme.splitlines() if line.startswith(f"| {first_cell}")]
    assert rows, f"README has no table row starting with {first_cell}"
    return rows[0]


def test_the_readme_documents_every_output_column_and_status():
    """The README's output table is held against the one contract and the one status vocabulary."""
    from mmscore.contract import IMAGE_STATUS_COLUMNS, OUTPUT_FIELDS, TEXT_STATUS
    from mmscore.statuses import HTTP_PREFIX, IMAGE_STATUSES, TEXT_STATUSES

    readme = (PACKAGE.parent / "README.md").read_text()
    table = readme[readme.index("Output columns added to the input's:") :]
    table = table[: table.index("\n\n", table.index("| column"))]
    for column in OUTPUT_FIELDS:
        rows = [line for line in table.splitlines() if line.startswith("| `")]
        row = next(line for line in rows if f"`{column.name}`" in line.split("|")[1])
        kind = {"string": "string", "float": "float32", "bool": "bool"}[str(column.type)]
        assert f"| {kind} |" in row, (column.name, row)
    images = _readme_row(table, " ".join(f"`{c}`," for c in IMAGE_STATUS_COLUMNS).rstrip(","))
    for status in (*IMAGE_STATUSES, f"{HTTP_PREFIX}404"):
        assert f"`{status}`" in images, status
    texts = _readme_row(table, f"`{TEXT_STATUS}`")
    for status in TEXT_STATUSES:
        assert f"`{status}`" in texts, status


# The package ladder (mmscore/README.md): a package imports only from rungs below it, never from its own rung's
# other packages; the single modules at the bottom (errors, labels, defaults, ...) serve everyone.
LADDER = (("io",), ("images",), ("encoders",), ("model",), ("scoring", "training"), ("scorer", "doctor", "report"),
          ("render", "cli_options"), ("cli",))  # fmt: skip


def _rung(module: str) -> int | None:
    part = module.split(".")[1] if "." in module else None
    return next((i for i, rung in enumerate(LADDER) if part in rung), None)


def test_packages_form_a_ladder():
    graph = _import_graph()
    for module, targets in graph.items():
        if module == "mmscore":  # the lazy public door (mmscore.Scorer, mmscore.train, ...)
            continue
        here = _rung(module)
        for target in targets:
            there = _rung(target)
            if there is None or module.split(".")[1] == target.split(".")[1]:
                continue  # a bottom module, or the same package
            assert here is not None and there < here, f"{module} imports {target}: not from a rung below it"


# Drivers read as a list of steps: their bodies (after the docstring) stay short.
DRIVERS = {"training/recipe.py": ("train", "train_model"), "training/pair_reader.py": ("train_pair_reader",)}


def test_functions_are_short_and_drivers_shorter():
    too_long, long_drivers = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.end_lineno - node.lineno + 1 > 60:
                too_long.append(f"{name}:{node.name}")
            if node.name in DRIVERS.get(name, ()):
                body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # past the docstring
                if node.end_lineno - body[0].lineno + 1 > 40:
                    long_drivers.append(f"{name}:{node.name}")
    assert not too_long, f"functions over 60 lines: {too_long}"
    assert not long_drivers, f"drivers over 40 lines of body: {long_drivers}"
