"""The layout rules (issue 12), checked on the source with `ast`, nothing imported:

(a) no import cycle: none at module level anywhere in core and coupons, and none either
    when imports inside functions count too (a function-level import that only dodges a
    cycle is still a cycle); the sub-domains (coupons.abuse, .campaigns, .codebatches,
    .analytics) use coupons only through its services, selectors, models, engine, locks,
    promotions (and the small modules those are built from), and coupons imports a
    sub-domain only along the edges listed below, each with its reason;
(b) the sub-domains reach coupon tables only through coupons: no SQL naming a coupon
    table in their string literals, and no ORM write or lock on a coupons model;
(c) the top-level apps (coupons, billing) use each other only through the other's
    services and selectors (APP_ENTRY_POINTS), and core imports no app (issue 13).

The checkers take the source root as an argument, so the last tests run them on small
synthetic trees that break each rule: a rule that cannot fail proves nothing.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "coupons", "billing")
APPS = ("coupons", "billing", "entitlements", "referrals")
# Which app may import which other app, and only through what (STYLE: services/selectors).
APP_ENTRY_POINTS: dict[tuple[str, str], tuple[str, ...]] = {
    # billing redeems coupons for subscriptions and prices each invoice's discount
    ("billing", "coupons"): ("coupons.services", "coupons.selectors"),
    # entitlements asks billing which plan gives access, subscribes to its outbox, and
    # edits plans' feature values through billing's services
    ("entitlements", "billing"): ("billing.selectors", "billing.services", "billing.events"),
    # referrals reads billing's customers, grants and claws back credit, reacts to its
    # outbox; issues the welcome offer and hashes identities through the coupon engine
    ("referrals", "billing"): ("billing.selectors", "billing.services", "billing.events"),
    ("referrals", "coupons"): ("coupons.services", "coupons.selectors"),
}
SKIPPED_DIRS = {"tests", "migrations", "__pycache__"}
SUBDOMAINS = ("coupons.abuse", "coupons.campaigns", "coupons.codebatches", "coupons.analytics")

# What a sub-domain may import from coupons (a module or a package prefix).
COUPON_ENTRY_POINTS = (
    "coupons.services",
    "coupons.selectors",
    "coupons.models",
    "coupons.engine",
    "coupons.locks",
    "coupons.promotions",
    "coupons.rules",  # rule_from_coupon (pure), shared by selectors, promotions, analytics
    "coupons.activation",  # the lock-and-save behind coupons_set_active: the leak detector
    # disables through it, as it may not import coupons.services (which calls abuse)
)
# A sub-domain's HTTP layer builds on the coupons app's (the error body, serializers,
# views' base classes): coupons.api imports no sub-domain's API back.
SHARED_HTTP = "coupons.api"
# Sub-domain modules outside their api/ package that use coupons.api, and why.
SUBDOMAIN_TO_COUPONS_API = {
    ("coupons.analytics.simulation", "coupons.api.fields"): (
        "replays stored carts through the API's own cart parser (CartField)"
    ),
}
# Everything in coupons (outside the sub-domains) that imports a sub-domain, and why.
COUPONS_TO_SUBDOMAIN = {
    ("coupons.services", "coupons.abuse.services"): (
        "apply/return/re-enable call the abuse detectors; abuse never imports services"
    ),
    ("coupons.services", "coupons.abuse.identity"): (
        "apply hashes the shopper's identities before it stores them"
    ),
    ("coupons.checkout_events", "coupons.analytics.events"): (
        "checkout publishes its analytics events (the outbox writer lives in analytics)"
    ),
    ("coupons.api.views", "coupons.abuse.ratelimit"): (
        "the storefront endpoints are rate limited per shopper and code"
    ),
    ("coupons.admin", "coupons.codebatches.admin"): (
        "the coupon page embeds the batches' inline and actions"
    ),
    ("coupons.demo_history", "coupons.analytics.events"): "demo data: a history of events",
    ("coupons.demo_history", "coupons.analytics.models"): "demo data: a history of events",
    ("coupons.demo_history", "coupons.analytics.rollup"): "demo data: rolled up like live",
    ("coupons.management.commands.seed_demo", "coupons.campaigns.models"): (
        "the demo seed creates a flash-sale campaign"
    ),
    ("coupons.management.commands.seed_demo", "coupons.campaigns.services"): (
        "the demo seed creates a flash-sale campaign"
    ),
}
# Function-level imports allowed to close a cycle: a sub-domain's services queue its own
# Celery tasks after commit, and the thin tasks module calls those services. Within one
# package, and only this pair.
LAZY_TASK_IMPORTS = {
    ("coupons.abuse.services", "coupons.abuse.tasks"),
    ("coupons.codebatches.services", "coupons.codebatches.tasks"),
    # billing queues its tasks from on_commit hooks (events, dunning emails, long clocks)
    ("billing.events", "billing.tasks"),
    ("billing.invoicing", "billing.tasks"),
    ("billing.testclocks", "billing.tasks"),
}

COUPON_TABLES = re.compile(r"\bcoupons_(code|customer|redemption|coupon)\b", re.IGNORECASE)
ORM_WRITES = frozenset(
    {
        "create",
        "bulk_create",
        "get_or_create",
        "update_or_create",
        "update",
        "bulk_update",
        "delete",
        "select_for_update",
        "raw",
    }
)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    module_level: bool
    line: int


# --- the checkers -----------------------------------------------------------------------


def find_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted name -> file, for the packages' code (tests and migrations left out)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if SKIPPED_DIRS.intersection(parts):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import that runs, with whether it runs at import time (module or class
    body) or only when a function is called. `if TYPE_CHECKING:` blocks never run."""

    def visit(node: ast.AST, in_function: bool) -> Iterator:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for statement in node.orelse:
                yield from visit(statement, in_function)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, not in_function
            return
        nested = in_function or isinstance(
            node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        for child in ast.iter_child_nodes(node):
            yield from visit(child, nested)

    yield from visit(tree, False)


def _known(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> list[Import]:
    """The imports between the packages' modules (module- and function-level)."""
    modules = find_modules(root, packages)
    edges = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node, module_level in _import_nodes(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                known = _known(target, modules)
                if known is not None and known != name:
                    edges.append(Import(name, known, module_level, node.lineno))
    return edges


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def subdomain_of(module: str) -> str | None:
    for sub in SUBDOMAINS:
        if module == sub or module.startswith(sub + "."):
            return sub
    return None


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _is_http_layer(module: str) -> bool:
    return ".api." in module + "." or module.rsplit(".", 1)[-1] in ("admin", "admin_views")


def layering_violations(edges: Iterable[Import]) -> list[str]:
    """Imports against the allowed directions between coupons and its sub-domains."""
    problems = []
    package_edges: set[tuple[str, str]] = set()
    for e in edges:
        source, target = subdomain_of(e.source), subdomain_of(e.target)
        where = f"{e.source} -> {e.target} (line {e.line})"
        if source and target and source != target:
            package_edges.add((source, target))
        elif source and target is None and _within(e.target, "coupons"):
            if _within(e.target, SHARED_HTTP):
                if not _is_http_layer(e.source) and (e.source, e.target) not in (
                    SUBDOMAIN_TO_COUPONS_API
                ):
                    problems.append(f"sub-domain code uses the coupons HTTP layer: {where}")
            elif not any(_within(e.target, ok) for ok in COUPON_ENTRY_POINTS):
                problems.append(f"sub-domain reaches past coupons' services/selectors: {where}")
        elif (
            source is None
            and target
            and _within(e.source, "coupons")
            and (e.source, e.target) not in COUPONS_TO_SUBDOMAIN
        ):
            problems.append(f"coupons imports a sub-domain (not listed): {where}")
        if _within(e.source, "core") and any(_within(e.target, app) for app in APPS):
            problems.append(f"core is what every app shares: it imports no app: {where}")
    for component in cycles(Import(a, b, True, 0) for a, b in package_edges):
        problems.append(f"sub-domains import each other in a cycle: {component}")
    return problems


def _app_of(module: str) -> str | None:
    top = module.split(".", 1)[0]
    return top if top in APPS else None


def app_violations(edges: Iterable[Import]) -> list[str]:
    """Imports from one top-level app into another past its services and selectors."""
    problems = []
    for e in edges:
        source, target = _app_of(e.source), _app_of(e.target)
        if source is None or target is None or source == target:
            continue
        allowed = APP_ENTRY_POINTS.get((source, target), ())
        if not any(_within(e.target, ok) for ok in allowed):
            problems.append(
                f"{source} uses {target} past its services/selectors: "
                f"{e.source} -> {e.target} (line {e.line})"
            )
    return problems


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _coupon_model_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound to coupons.models classes, names bound to the coupons.models module)."""
    classes, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "coupons.models":
            classes.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "coupons":
            modules.update(a.asname or a.name for a in node.names if a.name == "models")
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "coupons.models" and a.asname)
    return classes, modules


def _chain_root(node: ast.AST) -> ast.AST:
    """`Code.objects.filter(...).update` -> the `Code` at the start of the chain."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.attr != "objects":
                return node  # `models.Code` (a module attribute), or `Code.objects`' Code
            node = node.value
        else:
            return node


def coupon_table_violations(root: Path) -> list[str]:
    """SQL on coupon tables and ORM writes/locks on coupons models, in sub-domain code."""
    problems = []
    for name, path in find_modules(root, ["coupons"]).items():
        if subdomain_of(name) is None:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and COUPON_TABLES.search(node.value)
            ):
                problems.append(f"{name}:{node.lineno}: SQL on a coupon table")
        classes, model_modules = _coupon_model_names(tree)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ORM_WRITES
            ):
                continue
            start = _chain_root(node.func)
            hit = (isinstance(start, ast.Name) and start.id in classes) or (
                isinstance(start, ast.Attribute)
                and isinstance(start.value, ast.Name)
                and (start.value.id in model_modules or start.value.id in classes)
            )
            if hit:
                problems.append(
                    f"{name}:{node.lineno}: .{node.func.attr}() on a coupons model "
                    "(writes and locks go through coupons.services)"
                )
    return problems


# --- the project --------------------------------------------------------------------------


def test_no_import_cycle_at_module_level():
    edges = [e for e in import_graph(ROOT) if e.module_level]
    assert cycles(edges) == []


def test_no_import_cycle_counting_function_level_imports():
    edges = [e for e in import_graph(ROOT) if (e.source, e.target) not in LAZY_TASK_IMPORTS]
    assert cycles(edges) == []


def test_the_allowed_lazy_task_imports_are_function_level_and_still_there():
    edges = {(e.source, e.target): e for e in import_graph(ROOT)}
    for pair in LAZY_TASK_IMPORTS:
        assert pair in edges, f"{pair} is gone: drop it from LAZY_TASK_IMPORTS"
        assert not edges[pair].module_level, pair


def test_coupons_and_its_subdomains_import_each_other_only_in_the_allowed_directions():
    assert layering_violations(import_graph(ROOT)) == []


def test_every_listed_edge_into_a_subdomain_still_exists():
    pairs = {(e.source, e.target) for e in import_graph(ROOT)}
    stale = sorted(set(COUPONS_TO_SUBDOMAIN) - pairs) + sorted(
        set(SUBDOMAIN_TO_COUPONS_API) - pairs
    )
    assert stale == [], "listed edges that no longer exist: drop them"


def test_subdomains_reach_coupon_tables_only_through_coupons():
    assert coupon_table_violations(ROOT) == []


def test_apps_use_each_other_only_through_services_and_selectors():
    assert app_violations(import_graph(ROOT)) == []


def test_the_app_checker_catches_a_reach_past_services_and_a_way_back(tmp_path):
    root = _tree(
        tmp_path,
        {
            "billing/__init__.py": "",
            "billing/services.py": (
                "from coupons import services\nfrom coupons.models import Coupon\n"
            ),
            "coupons/services.py": "def f():\n    from billing import services\n",
            "coupons/models.py": "",
            "core/money.py": "from billing import services\n",
        },
    )
    edges = import_graph(root, ("core", "coupons", "billing"))
    assert sorted(app_violations(edges)) == [
        "billing uses coupons past its services/selectors: "
        "billing.services -> coupons.models (line 2)",
        "coupons uses billing past its services/selectors: "
        "coupons.services -> billing.services (line 2)",
    ]
    assert "core is what every app shares" in " ".join(layering_violations(edges))


# --- the checkers fail where they must ------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in ("core", "coupons"):
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_the_checkers_catch_the_cycles_and_raw_coupon_sql_of_before(tmp_path):
    # given: the shapes issue 12 was about
    root = _tree(
        tmp_path,
        {
            "coupons/services.py": "from coupons.abuse import services as abuse_services\n",
            "coupons/selectors.py": (
                "from coupons.abuse import tasks\n"
                "def cache_forget():\n    from coupons import promotions\n    promotions.x()\n"
            ),
            "coupons/promotions.py": (
                "def _build():\n    from coupons.selectors import rule_from_coupon\n"
            ),
            "coupons/models.py": "class Code: ...\n",
            "coupons/abuse/__init__.py": "",
            "coupons/abuse/services.py": (
                "from coupons.models import Code\n"
                "from coupons.promotions import catalog\n"
                "def coupon_auto_disable():\n"
                "    from coupons import services as coupon_services\n"
                "    coupon_services.coupons_set_active()\n"
                "def expire():\n"
                '    sql = "UPDATE coupons_code SET active = false WHERE id = ANY(%s)"\n'
                "    Code.objects.filter(pk=1).update(active=False)\n"
                "    Code.objects.select_for_update().get(pk=1)\n"
            ),
            "coupons/abuse/tests/test_x.py": 'SQL = "SELECT * FROM coupons_code"\n',
            "coupons/campaigns/__init__.py": "",
            "coupons/campaigns/services.py": (
                '"""Mentions coupons_code in prose only."""\n'
                "from coupons import localcache\n"
                "from coupons import models as cm\n"
                "def stop():\n"
                "    cm.Coupon.objects.bulk_create([])\n"
            ),
            "coupons/localcache.py": "",
        },
    )

    # when
    edges = import_graph(root)

    # then: the cycles count function-level imports; at module level there is none
    assert cycles(edges) == [
        ["coupons.promotions", "coupons.selectors"],
        ["coupons.abuse.services", "coupons.services"],
    ]
    assert cycles(e for e in edges if e.module_level) == []
    assert layering_violations(edges) == [
        "sub-domain reaches past coupons' services/selectors: "
        "coupons.campaigns.services -> coupons.localcache (line 2)",
        "coupons imports a sub-domain (not listed): coupons.selectors -> coupons.abuse (line 1)",
    ]
    assert coupon_table_violations(root) == [
        "coupons.abuse.services:7: SQL on a coupon table",
        "coupons.abuse.services:8: .update() on a coupons model "
        "(writes and locks go through coupons.services)",
        "coupons.abuse.services:9: .select_for_update() on a coupons model "
        "(writes and locks go through coupons.services)",
        "coupons.campaigns.services:5: .bulk_create() on a coupons model "
        "(writes and locks go through coupons.services)",
    ]


def test_the_checkers_see_relative_and_type_checking_imports(tmp_path):
    root = _tree(
        tmp_path,
        {
            "coupons/codebatches/__init__.py": "",
            "coupons/codebatches/services.py": (
                "from typing import TYPE_CHECKING\n"
                "from . import tasks\n"
                "if TYPE_CHECKING:\n"
                "    from coupons.admin import Anything\n"
            ),
            "coupons/codebatches/tasks.py": "from .services import run\n",
            "coupons/admin.py": "",
        },
    )
    edges = import_graph(root)
    assert cycles(edges) == [["coupons.codebatches.services", "coupons.codebatches.tasks"]]
    assert layering_violations(edges) == []  # the TYPE_CHECKING import never runs
