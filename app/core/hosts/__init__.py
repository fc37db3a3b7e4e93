"""Model hosts: the host protocol, the Ollama host, addresses and the registry."""
