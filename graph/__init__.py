"""The knowledge graph: entities and relations per tenant, kept in step with the documents.

Extraction runs at ingestion time (`updater.GraphUpdater`, a document listener); queries only
match known entity keys and walk the graph (`leg.GraphLeg`), so a search never calls a model.
"""
