"""People, units and places: agencies, units, regions, users, certificates, legal qualifications."""
