"""Pydantic models shared by every stage: raw payloads, canonical records, config files."""
