"""Local (non-Kubernetes) runs: a throwaway PostgreSQL and an instance config rendered from the chart values."""
