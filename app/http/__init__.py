"""The HTTP service: the app factory, thin controllers, the identity guard, middleware (limits,
access log, metrics), error mapping to problem details, SSE, the OpenAPI declarations and the
uvicorn server that runs it."""
