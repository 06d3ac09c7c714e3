"""A plugin module that cannot be imported."""

raise ImportError("this plugin's module fails to import")
