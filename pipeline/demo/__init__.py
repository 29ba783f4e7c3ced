"""Offline stand-ins for the real sources: realistic sample months of every era, a local
HTTP mirror laid out like the real hosts, and the offline demo. Not part of a production run.
"""
