"""Layer 4: spans, timelines, heatmaps, speed-up, cost and Prometheus metrics of runs. Import the
modules themselves; nothing is re-exported."""

__all__: list[str] = []
