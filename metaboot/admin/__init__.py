"""The admin side of the registry: a REST API (transport-independent, mounted by the service on
its admin listener), its OpenAPI document, and a small client the CLI uses."""
