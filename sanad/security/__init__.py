"""Identities, roles, authorization, TLS material and the audit trail (DESIGN section 6)."""
