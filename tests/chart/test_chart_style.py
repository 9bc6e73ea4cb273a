"""House style of the chart: `<component>-<kind>.yaml` template files, helpers under
templates/helpers/ with every define prefixed with the chart name."""

from __future__ import annotations

import re

import pytest
import yaml
from chart_render import CHART_DIR, helm_template

TEMPLATES = sorted(p for p in (CHART_DIR / "templates").rglob("*.yaml"))
# Templates that render nothing with the default values, and the ci scenario that turns them on.
OFF_BY_DEFAULT = {"webserver-ingress.yaml": CHART_DIR / "ci" / "webserver-ingress-values.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=[str(p.relative_to(CHART_DIR)) for p in TEMPLATES])
def test_template_file_is_named_component_kind(helm, template):
    values_files = [OFF_BY_DEFAULT[template.name]] if template.name in OFF_BY_DEFAULT else []
    result = helm_template(helm, values_files, extra_args=["--show-only", str(template.relative_to(CHART_DIR))])
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"].lower() for doc in yaml.safe_load_all(result.stdout) if doc}
    assert kinds, f"{template.name} renders nothing with {values_files or 'the default values'}"
    assert len(kinds) == 1 and template.stem.endswith("-" + kinds.pop()), f"{template.name} renders {kinds}"


def test_helpers_live_in_helpers_and_are_prefixed_with_the_chart_name():
    defines = []
    for path in (CHART_DIR / "templates").rglob("*"):
        if path.is_file():
            for name in re.findall(r'define\s+"([^"]+)"', path.read_text()):
                defines.append((path.relative_to(CHART_DIR / "templates").parts[0], name))
    assert defines
    for folder, name in defines:
        assert folder == "helpers", f"define {name} outside templates/helpers/"
        assert name.startswith("dagster-dbt-k8s."), f"define {name} is not prefixed with the chart name"
