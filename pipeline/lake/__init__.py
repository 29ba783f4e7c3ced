"""The data lake: where each (service, month) lives (keys), atomic publication, and targets
for a local directory and a Google Cloud Storage bucket.
"""
