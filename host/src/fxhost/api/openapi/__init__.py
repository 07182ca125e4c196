"""The API described as data: routes declared once (declare), requests decoded (decode),
errors as problem+json (problems), the OpenAPI document (document) and its docs pages
(pages)."""
