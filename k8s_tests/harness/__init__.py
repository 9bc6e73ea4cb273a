"""What the cluster suites (k8s_tests/test_cluster.py, k8s_tests/chaos/) and the benchmark
(k8s_tests/bench/) share, none of it a pytest fixture or a test's assertion:

- `cluster`: the kind cluster (created by k8s_tests/cluster/up.sh), its tools, bounded waits and
  failure artifacts;
- `deployment`: the chart installed by hack/up.sh (`make up`), its names and port-forwards;
- `dagster_api`: the webserver's GraphQL API, the only way Dagster's state is read;
- `faults`: the faults injected into pods;
- `release`: launching and following releases and run groups, and the green reader;
- `example`: the example dbt project's names (jobs, ops, pools, tags, nodes).

The helpers the fast suite shares with these (warehouse reads, the one bounded wait) are
`tests/support.py` and `tests/waiting.py`. Fixtures are layered on this package in
k8s_tests/cluster_fixtures.py and k8s_tests/chaos/fixtures.py.
"""
