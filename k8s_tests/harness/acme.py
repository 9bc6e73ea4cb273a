"""The fast suite's configured dbt project (tests/dbt_projects/acme) as the cluster suite deploys
it: a project other than the example, in an image of its own (ACME_PROJECT_IMAGE, built by
`make k8s-test-images`). Its release job and pause tag are read from its dagster.yml; its own
nodes are named once, here.
"""

from __future__ import annotations

from dagster_code.config import load_project_config
from dagster_code.translator import BLUE_PREPARED_KEY
from k8s_tests.harness.cluster import REPO_ROOT
from k8s_tests.harness.release import ReleaseProject

ACME_PROJECT_DIR = REPO_ROOT / "tests" / "dbt_projects" / "acme"
# The dbt var its fct_customer_events pre-hook pauses for (macros/pause_seconds.sql).
PAUSE_VAR = "acme_pause_seconds"
PAUSED_MODEL = "fct_customer_events"
# Its seeds: the release reads them, and nothing else loads them (the project has no raw-data job).
ACME_SEEDS = tuple(sorted(path.stem for path in (ACME_PROJECT_DIR / "seeds").glob("*.csv")))
# The release's models (dagster.yml: staging and marts); the marts are promoted (no `promote`: the
# last ones), and none of them is downstream of another, so dbt's threads build every model but
# the paused one while it waits.
_STAGING = {path.stem for path in (ACME_PROJECT_DIR / "models" / "staging").glob("*.sql")}
_MARTS = tuple(sorted(path.stem for path in (ACME_PROJECT_DIR / "models" / "marts").glob("*.sql")))

_CONFIG = load_project_config(ACME_PROJECT_DIR)
ACME_RELEASE = ReleaseProject(
    job=_CONFIG.release.job,
    pause_tag=_CONFIG.vars_from_run_tags[PAUSE_VAR],
    paused_model=PAUSED_MODEL,
    built_before_pause=frozenset({BLUE_PREPARED_KEY.to_user_string(), *_STAGING, *_MARTS} - {PAUSED_MODEL}),
    marts=_MARTS,
    marts_stamped=False,
)
