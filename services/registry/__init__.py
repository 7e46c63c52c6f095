"""Registry: reference data, centres and licences, and the e-service catalogue."""
