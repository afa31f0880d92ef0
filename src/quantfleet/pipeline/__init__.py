"""Layer 5: the Prefect pipeline (config, stages, flow, health checks). Prefect is imported
only inside the functions that run a flow."""

__all__: list[str] = []  # the modules are the public surface; nothing is re-exported
