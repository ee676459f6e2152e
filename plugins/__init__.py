"""Built-in genrec-bench plugins, registered exactly like third-party ones."""
