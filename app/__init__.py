"""The composition root: settings, the backends a process opens (each once, behind a circuit
breaker), routing to spines and views; the HTTP service (`app.http`), the use cases that decide
what to append (`app.usecases`), the files of a tenant archive (`app.archive_files`) and the
`spine` command line (`app.cli`)."""
