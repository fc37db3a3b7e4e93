"""MCP tool servers: config, importers, the manager (the only code importing ``mcp``)."""
