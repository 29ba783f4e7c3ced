"""Running the pipeline: the ``taxi-pipeline`` console script, batch jobs, the central
scheduler, status, and logging hooks.
"""
