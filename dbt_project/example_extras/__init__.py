"""Python that only this example dbt project needs, loaded through dagster.yml's `python_modules`:
a generator of its raw data, and the asset and job that load it. A project that reads real
sources needs nothing like it."""
