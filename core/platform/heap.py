"""The collector's settings for a long-running process (the API, the worker), applied once start-up is
done. Python's cyclic collector walks every tracked object in its oldest generation on each full
collection; after start-up that is hundreds of thousands of objects (modules, pydantic models, the SDK)
that never die, and a full collection in the middle of a request showed as a 40 ms pause in a page of
200 instances at the seed's scale (issue 27, docs/benchmarks.md). ``gc.freeze`` moves them out of the
collector's sight; a larger first threshold collects young objects less often."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between collections of the youngest generation (Python's: 700)


def settle() -> None:
    """Collect once, then freeze what is alive now (it lives as long as the process)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
