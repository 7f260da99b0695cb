from streams.topology.stalls import StallDetector


def test_a_partition_with_records_waiting_and_no_progress_is_reported_after_the_delay():
    detector = StallDetector(after_s=15)
    assert not detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=100)
    assert not detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=114.9)
    assert detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=115)
    # Reported once, then the clock starts again.
    assert not detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=116)
    assert detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=131)


def test_progress_restarts_the_clock():
    detector = StallDetector(after_s=15)
    detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=100)
    assert not detector.stalled("p0", next_offset=11, end=14, in_flight=False, now=115)
    assert detector.stalled("p0", next_offset=11, end=14, in_flight=False, now=130)


def test_a_partition_at_its_end_or_busy_with_a_record_is_not_stalled():
    detector = StallDetector(after_s=15)
    for now in (100, 200, 300):
        assert not detector.stalled("caught-up", next_offset=14, end=14, in_flight=False, now=now)
        # An agent held up by Redis is slow, not stalled: its record is in flight.
        assert not detector.stalled("blocked", next_offset=10, end=14, in_flight=True, now=now)
        assert not detector.stalled("unknown-end", next_offset=10, end=None, in_flight=False, now=now)


def test_partitions_no_longer_assigned_are_forgotten():
    detector = StallDetector(after_s=15)
    detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=100)
    detector.keep_only(["p1"])
    assert not detector.stalled("p0", next_offset=10, end=14, in_flight=False, now=115)


def test_the_consumer_is_idle_only_after_its_overall_position_stayed_put_for_the_delay():
    detector = StallDetector(after_s=15)
    detector.progress(100, now=0)
    detector.progress(250, now=10)   # busy on other partitions: not idle
    assert not detector.idle(now=20)
    detector.progress(250, now=24.9)
    assert not detector.idle(now=24.9)
    assert detector.idle(now=25)
