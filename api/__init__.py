"""The REST API: search, answers, documents, status and key management over HTTP."""
