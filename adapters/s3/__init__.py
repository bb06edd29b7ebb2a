"""Amazon S3 and S3-protocol stores (aioboto3): the object store (`objects.py`)."""
