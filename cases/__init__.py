"""The application layer: the `vcnn` command (`cli`), the case families (`flows`), the studies and
scoring (`studies`), the reports (`reports`) and the shipped case and study files. Nothing imports it."""
