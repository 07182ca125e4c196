"""The HTTP and WebSocket edge: the Starlette app, one route module per resource, the API
described as data, authentication, uploads and the live protocol."""
