"""Bad values are refused at `helm template` time, with a message that names the key."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from chart_render import assert_refused, helm_template

# A valid Ingress and external server, which the cases below break one key at a time.
INGRESS: dict[str, Any] = {"enabled": True, "hosts": [{"host": "dagster.example.com"}]}
EXTERNAL_SERVER: dict[str, Any] = {"host": "db.example.internal", "existingSecret": "dagster-db"}
EXTERNAL_POSTGRESQL: dict[str, Any] = {"postgresql": {"enabled": False}}

# (id, values file content, text the error must contain: it names the key)
BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("unknown-top-level-key", {"webserver": {"replicas": 2}}, "at '': additional properties 'webserver' not allowed"),
    (
        "unknown-nested-key",
        {"dagsterDaemon": {"runMonitoring": {"pollInterval": 5}}},
        "at '/dagsterDaemon/runMonitoring': additional properties 'pollInterval' not allowed",
    ),
    (
        "negative-pool-limit",
        {"concurrency": {"pools": {"limits": {"dbt-snapshots": -1}}}},
        "at '/concurrency/pools/limits/dbt-snapshots': minimum: got -1, want 0",
    ),
    (
        "negative-default-pool-limit",
        {"concurrency": {"pools": {"defaultLimit": -2}}},
        "at '/concurrency/pools/defaultLimit': minimum: got -2, want 0",
    ),
    (
        "retries-enabled-with-max-retries-0",
        {"dagsterDaemon": {"runRetries": {"enabled": True, "maxRetries": 0}}},
        "at '/dagsterDaemon/runRetries/maxRetries': minimum: got 0, want 1",
    ),
    (
        "negative-max-retries",
        {"dagsterDaemon": {"runRetries": {"enabled": False, "maxRetries": -1}}},
        "at '/dagsterDaemon/runRetries/maxRetries': minimum: got -1, want 0",
    ),
    (
        "unknown-retry-strategy",
        {"dagsterDaemon": {"runRetries": {"strategy": "FROM_SCRATCH"}}},
        "at '/dagsterDaemon/runRetries/strategy': "
        "value must be one of 'FROM_ASSET_FAILURE', 'FROM_FAILURE', 'ALL_STEPS'",
    ),
    (
        "release-tag-limit-in-values",
        {"concurrency": {"runs": {"tagConcurrencyLimits": [{"key": "dagster-dbt-k8s/release", "limit": 3}]}}},
        "concurrency.runs.tagConcurrencyLimits[0]: the key dagster-dbt-k8s/release is the platform's",
    ),
    (
        "unknown-pool-granularity",
        {"concurrency": {"pools": {"granularity": "step"}}},
        "at '/concurrency/pools/granularity': value must be one of 'op', 'run'",
    ),
    (
        "unknown-dbt-target",
        {"warehouse": {"target": "bigquery"}},
        "at '/warehouse/target': value must be one of 'postgres', 'snowflake'",
    ),
    (
        "missing-image-tag",
        {"codeLocation": {"image": {"tag": None}}},
        "at '/codeLocation/image': missing property 'tag'",
    ),
    (
        "empty-image-tag",
        {"codeLocation": {"image": {"tag": ""}}},
        "at '/codeLocation/image/tag': minLength: got 0, want 1",
    ),
    (
        "latest-image-tag",
        {"codeLocation": {"image": {"tag": "latest"}}},
        "codeLocation.image.tag must not be latest: pin the tag of an image loaded into the cluster",
    ),
    (
        "postgresql-setting-not-a-name",
        {"postgresql": {"settings": {"max locks": 256}}},
        "'max locks' does not match pattern",
    ),
    (
        "empty-postgresql-image-tag",
        {"postgresql": {"image": {"tag": ""}}},
        "at '/postgresql/image/tag': minLength: got 0, want 1",
    ),
    (
        "pull-policy-always",
        {"codeLocation": {"image": {"pullPolicy": "Always"}}},
        "at '/codeLocation/image/pullPolicy': value must be one of 'IfNotPresent', 'Never'",
    ),
    (
        "string-for-a-number",
        {"dagsterDaemon": {"runMonitoring": {"pollIntervalSeconds": "30"}}},
        "at '/dagsterDaemon/runMonitoring/pollIntervalSeconds': got string, want integer",
    ),
    (
        "string-for-a-boolean",
        {"dagsterDaemon": {"runRetries": {"enabled": "yes"}}},
        "at '/dagsterDaemon/runRetries/enabled': got string, want boolean",
    ),
    (
        "external-postgresql-without-host",
        {"postgresql": {"enabled": False}, "externalPostgresql": {"existingSecret": "db"}},
        "externalPostgresql.host is required when postgresql.enabled is false",
    ),
    (
        "external-postgresql-without-secret",
        {"postgresql": {"enabled": False}, "externalPostgresql": {"host": "db.example"}},
        "externalPostgresql.existingSecret is required when postgresql.enabled is false",
    ),
    (
        "snowflake-without-secret",
        {
            "warehouse": {
                "target": "snowflake",
                "snowflake": {"account": "a", "user": "u", "warehouse": "w", "database": "d"},
            }
        },
        "warehouse.snowflake.existingSecret is required when warehouse.target is snowflake",
    ),
    (
        "snowflake-without-account",
        {"warehouse": {"target": "snowflake", "snowflake": {"existingSecret": "sf"}}},
        "warehouse.snowflake.account is required when warehouse.target is snowflake",
    ),
    # Scheduling and pod extras (podDefaults and each component's `pod` block).
    (
        "tolerations-not-a-list",
        {"codeLocation": {"pod": {"tolerations": {"key": "dedicated"}}}},
        "at '/codeLocation/pod/tolerations': got object, want array",
    ),
    (
        "unknown-toleration-operator",
        {"podDefaults": {"tolerations": [{"key": "dedicated", "operator": "In"}]}},
        "at '/podDefaults/tolerations/0/operator': value must be one of 'Exists', 'Equal'",
    ),
    (
        "env-item-without-name",
        {"podDefaults": {"env": [{"value": "1"}]}},
        "at '/podDefaults/env/0': missing property 'name'",
    ),
    (
        "env-from-secret-without-name",
        {"podDefaults": {"envFrom": [{"secretRef": {}}]}},
        "at '/podDefaults/envFrom/0/secretRef': missing property 'name'",
    ),
    (
        "pod-annotation-not-a-string",
        {"podDefaults": {"podAnnotations": {"prometheus.io/port": 9090}}},
        "at '/podDefaults/podAnnotations/prometheus.io~1port': got number, want string",
    ),
    (
        "priority-class-not-a-string",
        {"dagsterDaemon": {"pod": {"priorityClassName": 5}}},
        "at '/dagsterDaemon/pod/priorityClassName': got number, want string",
    ),
    (
        "unknown-key-in-a-pod-block",
        {"codeLocation": {"pod": {"nodeSelectors": {"disk": "ssd"}}}},
        "at '/codeLocation/pod': additional properties 'nodeSelectors' not allowed",
    ),
    (
        "extra-containers-on-run-pods",
        {"runLauncher": {"pod": {"extraContainers": [{"name": "proxy", "image": "proxy:1"}]}}},
        "at '/runLauncher/pod': additional properties 'extraContainers' not allowed",
    ),
    (
        "host-path-volume",
        {"podDefaults": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]}},
        "at '/podDefaults/volumes/0': additional properties 'hostPath' not allowed",
    ),
    (
        "relative-volume-mount-path",
        {"podDefaults": {"volumeMounts": [{"name": "keys", "mountPath": "keys"}]}},
        "at '/podDefaults/volumeMounts/0/mountPath': 'keys' does not match pattern '^/'",
    ),
    (
        "extra-container-without-image",
        {"dagsterWebserver": {"pod": {"extraContainers": [{"name": "proxy"}]}}},
        "at '/dagsterWebserver/pod/extraContainers/0': missing property 'image'",
    ),
    (
        "privileged-init-container",
        {"podDefaults": {"initContainers": [{"name": "x", "image": "x:1", "securityContext": {"privileged": True}}]}},
        "at '/podDefaults/initContainers/0/securityContext/privileged': value must be false",
    ),
    (
        "init-container-as-root",
        {"migrate": {"pod": {"initContainers": [{"name": "x", "image": "x:1", "securityContext": {"runAsUser": 0}}]}}},
        "at '/migrate/pod/initContainers/0/securityContext/runAsUser': minimum: got 0, want 1",
    ),
    (
        "extra-container-adds-a-capability",
        {
            "podDefaults": {
                "extraContainers": [
                    {"name": "x", "image": "x:1", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
                ]
            }
        },
        "at '/podDefaults/extraContainers/0/securityContext/capabilities/add/0': value must be 'NET_BIND_SERVICE'",
    ),
    (
        "extra-container-keeps-capabilities",
        {
            "podDefaults": {
                "extraContainers": [
                    {"name": "x", "image": "x:1", "securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}
                ]
            }
        },
        "at '/podDefaults/extraContainers/0/securityContext/capabilities/drop/0': value must be 'ALL'",
    ),
    (
        "extra-container-host-port",
        {
            "podDefaults": {
                "extraContainers": [{"name": "x", "image": "x:1", "ports": [{"containerPort": 80, "hostPort": 80}]}]
            }
        },
        "at '/podDefaults/extraContainers/0/ports/0': 'not' failed",
    ),
    (
        "pod-label-the-chart-sets",
        {"codeLocation": {"pod": {"podLabels": {"app.kubernetes.io/component": "mine"}}}},
        "codeLocation.pod.podLabels.app.kubernetes.io/component is set by the chart",
    ),
    (
        "checksum-annotation",
        {"podDefaults": {"podAnnotations": {"checksum/config": "x"}}},
        "podDefaults.podAnnotations.checksum/config is set by the chart",
    ),
    (
        "env-var-the-chart-sets",
        {"migrate": {"pod": {"env": [{"name": "DAGSTER_PG_HOST", "value": "elsewhere"}]}}},
        "migrate.pod.env[0]: DAGSTER_PG_HOST is set by the chart from its values",
    ),
    (
        "volume-name-the-chart-uses",
        {"podDefaults": {"volumes": [{"name": "tmp", "emptyDir": {}}]}},
        "podDefaults.volumes[0]: the chart already has a volume named tmp",
    ),
    (
        "container-name-the-chart-uses",
        {"postgresql": {"pod": {"extraContainers": [{"name": "postgresql", "image": "x:1"}]}}},
        "postgresql.pod.extraContainers[0]: the chart already has a container named postgresql",
    ),
    (
        "existing-service-account-without-name",
        {"serviceAccount": {"create": False}},
        "serviceAccount.runWorker.name is required when serviceAccount.create is false",
    ),
    (
        "additional-instance-config-turns-retries-off",
        {"additionalInstanceConfig": {"run_retries": {"enabled": False}}},
        "additionalInstanceConfig.run_retries.enabled: the chart sets this key of dagster.yaml",
    ),
    (
        "additional-instance-config-changes-the-pool-default",
        {"additionalInstanceConfig": {"concurrency": {"pools": {"default_limit": 4}}}},
        "additionalInstanceConfig.concurrency.pools.default_limit: the chart sets this key",
    ),
    (
        "additional-instance-config-replaces-run-monitoring",
        {"additionalInstanceConfig": {"run_monitoring": "off"}},
        "additionalInstanceConfig.run_monitoring: the chart sets this key",
    ),
    (
        "additional-instance-config-adds-a-storage",
        {"additionalInstanceConfig": {"storage": {"sqlite": {"base_dir": "/tmp"}}}},
        "additionalInstanceConfig.storage: the chart owns this section of dagster.yaml",
    ),
    (
        "additional-instance-config-configures-the-launcher",
        {"additionalInstanceConfig": {"run_launcher": {"config": {"job_namespace": "other"}}}},
        "additionalInstanceConfig.run_launcher: the chart owns this section of dagster.yaml",
    ),
    (
        "additional-instance-config-not-a-map",
        {"additionalInstanceConfig": ["retention"]},
        "at '/additionalInstanceConfig': got array, want object",
    ),
    (
        "additional-instance-config-replaces-the-run-coordinator",
        {"additionalInstanceConfig": {"run_coordinator": {"class": "DefaultRunCoordinator"}}},
        "additionalInstanceConfig.run_coordinator: the chart owns this section of dagster.yaml",
    ),
    (
        "additional-instance-config-adds-a-legacy-event-log-storage",
        {"additionalInstanceConfig": {"event_log_storage": {"module": "dagster._core.storage.event_log"}}},
        "additionalInstanceConfig.event_log_storage: the chart owns this section of dagster.yaml",
    ),
    (
        "additional-instance-config-lifts-the-run-limit",
        {"additionalInstanceConfig": {"concurrency": {"runs": {"max_concurrent_runs": -1}}}},
        "additionalInstanceConfig.concurrency.runs.max_concurrent_runs: the chart sets this key",
    ),
    (
        "ingress-enabled-without-hosts",
        {"dagsterWebserver": {"ingress": {"enabled": True}}},
        "dagsterWebserver.ingress.hosts: list at least one host when dagsterWebserver.ingress.enabled is true",
    ),
    (
        "ingress-tls-without-secret-name",
        {"dagsterWebserver": {"ingress": {**INGRESS, "tls": [{"hosts": ["dagster.example.com"]}]}}},
        "at '/dagsterWebserver/ingress/tls/0': missing property 'secretName'",
    ),
    (
        "ingress-tls-without-hosts",
        {"dagsterWebserver": {"ingress": {**INGRESS, "tls": [{"secretName": "dagster-tls"}]}}},
        "at '/dagsterWebserver/ingress/tls/0': missing property 'hosts'",
    ),
    (
        "ingress-tls-for-a-host-not-served",
        {
            "dagsterWebserver": {
                "ingress": {**INGRESS, "tls": [{"secretName": "dagster-tls", "hosts": ["other.example.com"]}]}
            }
        },
        "dagsterWebserver.ingress.tls[0].hosts: other.example.com is not one of dagsterWebserver.ingress.hosts",
    ),
    (
        "ingress-host-listed-twice",
        {"dagsterWebserver": {"ingress": {**INGRESS, "hosts": INGRESS["hosts"] * 2}}},
        "dagsterWebserver.ingress.hosts[1].host: dagster.example.com is listed twice",
    ),
    (
        "ingress-host-is-a-url",
        {"dagsterWebserver": {"ingress": {**INGRESS, "hosts": [{"host": "https://dagster.example.com"}]}}},
        "at '/dagsterWebserver/ingress/hosts/0/host': 'https://dagster.example.com' does not match pattern",
    ),
    (
        "ingress-host-given-as-a-string",
        {"dagsterWebserver": {"ingress": {**INGRESS, "hosts": ["dagster.example.com"]}}},
        "at '/dagsterWebserver/ingress/hosts/0': got string, want object",
    ),
    (
        "ingress-path-not-absolute",
        {
            "dagsterWebserver": {
                "ingress": {**INGRESS, "hosts": [{"host": "dagster.example.com", "paths": [{"path": "dagster"}]}]}
            }
        },
        "at '/dagsterWebserver/ingress/hosts/0/paths/0/path': 'dagster' does not match pattern '^/'",
    ),
    (
        "ingress-unknown-path-type",
        {"dagsterWebserver": {"ingress": {**INGRESS, "pathType": "prefix"}}},
        "at '/dagsterWebserver/ingress/pathType': value must be one of 'Prefix', 'Exact', 'ImplementationSpecific'",
    ),
    (
        "ingress-misspelt-key",
        {"dagsterWebserver": {"ingress": {**INGRESS, "ingressClassName": "nginx"}}},
        "at '/dagsterWebserver/ingress': additional properties 'ingressClassName' not allowed",
    ),
    (
        "external-postgresql-params-with-a-password",
        {**EXTERNAL_POSTGRESQL, "externalPostgresql": {**EXTERNAL_SERVER, "params": {"password": "s3cret"}}},
        "externalPostgresql.params.password: the server, port, user and database come from the chart's own keys",
    ),
    (
        "external-postgresql-params-with-a-host",
        {**EXTERNAL_POSTGRESQL, "externalPostgresql": {**EXTERNAL_SERVER, "params": {"host": "other"}}},
        "externalPostgresql.params.host: the server, port, user and database come from the chart's own keys",
    ),
    (
        "external-postgresql-params-name-not-libpq",
        {**EXTERNAL_POSTGRESQL, "externalPostgresql": {**EXTERNAL_SERVER, "params": {"SSL-Mode": "require"}}},
        "externalPostgresql.params.SSL-Mode: a libpq parameter name is lowercase letters, digits and _",
    ),
    (
        "external-postgresql-params-nested-map",
        {**EXTERNAL_POSTGRESQL, "externalPostgresql": {**EXTERNAL_SERVER, "params": {"options": {"a": "b"}}}},
        "at '/externalPostgresql/params/options': got object, want boolean or integer or string",
    ),
    (
        "warehouse-params-with-a-database",
        {"warehouse": {"postgres": {"params": {"dbname": "other"}}}},
        "warehouse.postgres.params.dbname: the server, port, user and database come from the chart's own keys",
    ),
    (
        "run-tag-allowlist-deeper-than-a-field",
        {"runLauncher": {"runTagK8sConfig": {"allowedKeys": ["container_config.resources.limits"]}}},
        "at '/runLauncher/runTagK8sConfig/allowedKeys/0'",
    ),
]


@pytest.mark.parametrize(
    ("values", "expected"), [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES]
)
def test_bad_values_are_refused_naming_the_key(helm, tmp_path, values, expected):
    assert_refused(helm, tmp_path, values, expected)


def test_the_bad_values_cases_differ_from_good_ones_only_in_the_bad_key(helm, tmp_path):
    """The same files with the offending value corrected render: each case fails for its own reason."""
    fixes = {
        "negative-pool-limit": {"concurrency": {"pools": {"limits": {"dbt-snapshots": 0}}}},
        "retries-enabled-with-max-retries-0": {"dagsterDaemon": {"runRetries": {"enabled": True, "maxRetries": 1}}},
        "retries-off-with-max-retries-0": {"dagsterDaemon": {"runRetries": {"enabled": False, "maxRetries": 0}}},
        "string-for-a-number": {"dagsterDaemon": {"runMonitoring": {"pollIntervalSeconds": 30}}},
        "run-tag-allowlist-deeper-than-a-field": {
            "runLauncher": {"runTagK8sConfig": {"allowedKeys": ["container_config.resources"]}}
        },
        "external-postgresql": {
            "postgresql": {"enabled": False},
            "externalPostgresql": {"host": "db", "existingSecret": "db"},
        },
        "existing-service-account": {
            "serviceAccount": {
                "create": False,
                **{
                    key: {"name": "dagster"}
                    for key in ("webserver", "daemon", "codeLocation", "runWorker", "postgresql", "hooks")
                },
            }
        },
        "ingress": {
            "dagsterWebserver": {
                "ingress": {
                    **INGRESS,
                    "hosts": [{"host": "dagster.example.com", "paths": [{"path": "/dagster"}]}],
                    "tls": [{"secretName": "dagster-tls", "hosts": ["dagster.example.com"]}],
                }
            }
        },
        "external-postgresql-params": {
            **EXTERNAL_POSTGRESQL,
            "externalPostgresql": {**EXTERNAL_SERVER, "params": {"sslmode": "require", "connect_timeout": 10}},
            "warehouse": {"postgres": {"params": {"sslrootcert": "/etc/ssl/certs/ca.crt"}}},
        },
        "pod-extras": {
            "podDefaults": {
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "dagster"}],
                "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                "podAnnotations": {"prometheus.io/port": "9090"},
                "podLabels": {"app.kubernetes.io/part-of": "data-platform"},
                "volumes": [{"name": "keys", "secret": {"secretName": "keys"}}],
                "volumeMounts": [{"name": "keys", "mountPath": "/keys"}],
                "initContainers": [
                    {
                        "name": "x",
                        "image": "x:1",
                        "securityContext": {"runAsUser": 2000, "readOnlyRootFilesystem": False},
                    }
                ],
                "extraContainers": [
                    {
                        "name": "sidecar",
                        "image": "sidecar:1",
                        "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}},
                    }
                ],
            },
            "dagsterDaemon": {"pod": {"priorityClassName": "dagster-high"}},
        },
    }
    for name, values in fixes.items():
        values_file = tmp_path / f"{name}.yaml"
        values_file.write_text(yaml.safe_dump(values))
        result = helm_template(helm, [values_file])
        assert result.returncode == 0, f"{name}: {result.stderr}"
