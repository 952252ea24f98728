"""What the README and deploy/ promise, checked against the code and the tools."""
