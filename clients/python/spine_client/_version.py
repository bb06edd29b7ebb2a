"""The client's version: the service's too, as the two are released together."""

VERSION = "0.1.0"  # read by pyproject.toml (setuptools' `attr:`): keep it a plain literal
USER_AGENT = f"spine-client/{VERSION}"
