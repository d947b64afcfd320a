from benchmarks.harness import Row, Timing, markdown, measure, percentile


def test_ratio_above_one_means_better_either_way() -> None:
    faster = Row("a", "read", Timing((1.0, 2.0, 3.0)), "s", "anchor", Timing((4.0, 4.0, 4.0)))
    assert faster.ratio == 2.0
    rate = Row("a", "append", 50_000.0, "events/s", "anchor", 100_000.0, higher_is_better=True)
    assert rate.ratio == 0.5
    assert "2.00 [1.00–3.00]" in markdown([faster])


def test_measure_and_percentile() -> None:
    calls = []
    t = measure(lambda: calls.append(1), repeat=4)
    assert len(t.runs) == 4 and len(calls) == 4 and t.min <= t.median <= t.max
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5) in (5, 6)
    assert percentile([1.0], 0.99) == 1.0
