"""The console: a browser front end served by the host itself (:mod:`.pages`), as plain
HTML, CSS and JavaScript modules in ``static/``, with no build step."""
