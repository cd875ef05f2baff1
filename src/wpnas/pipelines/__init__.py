"""Kedro glue: thin nodes that turn parameters into typed configs and call the library."""
