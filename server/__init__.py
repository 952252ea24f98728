"""The dispatch server: pure core, Redis store, endpoints and background loops."""
