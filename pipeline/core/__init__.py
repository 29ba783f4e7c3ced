"""The pipeline's vocabulary, with no luigi: months, the dataset registry (services, schemas,
source eras), the manifest, errors, gzip streams and the Arrow allocator settings.
"""
