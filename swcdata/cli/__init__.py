"""The `swcdata` command line: thin Typer front ends over the steps (`main` holds the app), the console
and the options every command shares (`console`), the report renderers (`render`)."""
