"""One module per resource; each lists its routes as data in ``ROUTES`` (collected by
:data:`fxhost.api.app.API`)."""
