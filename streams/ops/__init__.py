"""Operator tools: the `soc` command, the embedded dev stack, the topic bootstrap, the Redis
rebuild and the simulator."""
