"""Scaffolding shared by test modules: live here, never in production packages."""
