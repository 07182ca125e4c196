"""What can run: the plugin registry, ``plugins.toml``, effect chains and their
validation, and the README's effect table."""
