"""A directory on the service's own machine: the lab's object store (`objects.py`)."""
