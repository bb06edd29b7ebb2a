"""Azure Blob Storage (`azure.storage.blob.aio`): the object store (`objects.py`)."""
