"""The recovery benchmark (issue 6): `make bench`, or `python -m k8s_tests.bench --help`.

On a kind cluster with the chart installed, it measures what an eviction costs (re-executed work
per retry strategy, recovery latency per run-monitoring setting), how long a run takes to start,
and the idle gap of a limit-1 pool, several times each, and writes a JSON file and a Markdown table.
Figures from one run are compared as ratios: the machine is shared and noisy.
"""
