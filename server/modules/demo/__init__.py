"""A believable Shangluo for demos and newcomers: units, people, certificates, enterprises."""
