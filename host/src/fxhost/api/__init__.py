"""The API description layer: routes declared once with their msgspec types."""
