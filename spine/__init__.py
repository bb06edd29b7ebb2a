"""Spine: an event-sourced, multi-tenant durability service for AI-agent platforms."""
