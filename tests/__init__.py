"""The test suite: a module's tests at its mirrored path, behaviours in system/, helpers here."""
