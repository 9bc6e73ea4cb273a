"""Every GraphQL document the project sends to the webserver is valid against the schema of the
pinned dagster-graphql: a renamed field or a wrong type fails here, not minutes into a cluster run.

The documents are read from where they are sent: `.query(...)` calls of the cluster harness
(k8s_tests/harness/) and the benchmark, `graphql '...'` calls of hack/up.sh (`make up`), and the
chart's `helm test` pod.
`make materialize` goes through dagster-graphql's own client, whose documents ship with the schema.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import graphql
import pytest
from dagster_graphql.schema import create_schema

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON_SENDERS = sorted((REPO_ROOT / "k8s_tests").rglob("*.py"))
UP_SCRIPT = REPO_ROOT / "hack" / "up.sh"
HELM_TEST_POD = REPO_ROOT / "charts" / "dagster-dbt-k8s" / "templates" / "tests" / "webserver-test-pod.yaml"


def python_documents(path: Path) -> list[str]:
    """First arguments of `.query(...)` calls: string literals, f-strings rendered with the
    module's own names (e.g. a shared field list), and the module's constants passed by name."""
    documents = []
    module = None
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "query"):
            continue
        argument = node.args[0] if node.args else None
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            documents.append(argument.value)
        elif isinstance(argument, (ast.JoinedStr, ast.Name)):
            module_name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            module = module or importlib.import_module(module_name)
            expression = ast.fix_missing_locations(ast.Expression(argument))
            documents.append(eval(compile(expression, str(path), "eval"), vars(module)))
    return documents


def shell_documents(path: Path) -> list[str]:
    """Single-quoted first arguments of `graphql` and the `launch=` mutation of hack/up.sh."""
    text = path.read_text()
    return re.findall(r"graphql '([^']*)'", text) + re.findall(r"launch='([^']*)'", text)


def helm_test_documents(path: Path) -> list[str]:
    return re.findall(r'query = """(.*?)"""', path.read_text(), flags=re.DOTALL)


def all_documents() -> list[tuple[str, str]]:
    found = [(f"{path.relative_to(REPO_ROOT)}", doc) for path in PYTHON_SENDERS for doc in python_documents(path)]
    found += [(f"{UP_SCRIPT.relative_to(REPO_ROOT)}", doc) for doc in shell_documents(UP_SCRIPT)]
    found += [(f"{HELM_TEST_POD.relative_to(REPO_ROOT)}", doc) for doc in helm_test_documents(HELM_TEST_POD)]
    return found


DOCUMENTS = all_documents()


@pytest.fixture(scope="module")
def schema() -> graphql.GraphQLSchema:
    return create_schema().graphql_schema


def test_documents_found_in_every_sender():
    """The extraction itself: a sender whose documents are no longer found is a silent gap."""
    senders = {sender for sender, _ in DOCUMENTS}
    assert {
        "k8s_tests/harness/dagster_api.py",
        "k8s_tests/bench/deployment.py",
        "hack/up.sh",
        "charts/dagster-dbt-k8s/templates/tests/webserver-test-pod.yaml",
    } <= senders, senders
    assert len(DOCUMENTS) >= 15, [doc[:60] for _, doc in DOCUMENTS]


@pytest.mark.parametrize(("sender", "document"), DOCUMENTS, ids=[f"{s}:{d.split()[0:3]}" for s, d in DOCUMENTS])
def test_document_is_valid_against_the_pinned_schema(schema, sender, document):
    errors = graphql.validate(schema, graphql.parse(document))
    assert not errors, f"{sender}: {[error.message for error in errors]}\n{document}"
