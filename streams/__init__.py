"""The Faust app and everything with I/O: agents, Redis projection, web views, CLI, dev stack."""
