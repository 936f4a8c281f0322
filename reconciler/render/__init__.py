"""Rendering of plans and apply results: text, JSON and Markdown. Makes no decisions."""
