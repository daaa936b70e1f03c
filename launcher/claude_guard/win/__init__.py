"""Launching claude on Windows: command lines, npm cmd-shim files, PATH search and Job Objects."""
