"""Locales: parsing, negotiation, fallback chains and the service's message catalogs."""
