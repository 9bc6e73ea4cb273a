"""The raw-data generator is deterministic from its seed and scales with its size."""

from example_extras import raw_data


def test_same_seed_same_data_and_other_seed_other_data():
    assert raw_data.generate(seed=7, size=1).tables == raw_data.generate(seed=7, size=1).tables
    assert raw_data.generate(seed=7, size=1).tables != raw_data.generate(seed=8, size=1).tables


def test_size_scales_every_table():
    small = raw_data.summarize(raw_data.generate(seed=7, size=1))["row_counts"]
    large = raw_data.summarize(raw_data.generate(seed=7, size=3))["row_counts"]
    for table in ("app_events", "customers", "products", "orders"):
        assert large[table] == 3 * small[table], table


def test_events_lie_in_the_documented_days():
    data = raw_data.generate(seed=7, size=1)
    days = {row["event_time"].date() for row in data.rows("app_events")}
    assert min(days) == raw_data.EVENTS_START
    assert len(days) == raw_data.EVENTS_DAYS
