"""Judges: grade responses against rubrics (an OpenAI-compatible LLM judge, or the offline regex judge)."""
