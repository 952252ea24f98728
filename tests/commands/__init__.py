"""Tests of server/commands/, one file per module: the subcommands and the processes they start."""
