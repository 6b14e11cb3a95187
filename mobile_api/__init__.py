"""The device API (/mobile/v1): thin views over server.modules.* operations."""
