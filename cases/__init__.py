"""The application layer: named cases, their pipelines and the `vcnn` command. Nothing imports it."""
