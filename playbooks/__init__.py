"""Playbooks: which CRM work a risk flag or people signal creates."""
