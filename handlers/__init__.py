"""Pure decisions, no I/O: parse and classify per source, dedup, routing, deadlines, ticket states."""
