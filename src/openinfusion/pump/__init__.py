"""The pump firmware core: pure, deterministic, typed. See ARCHITECTURE rules in docs/architecture.md."""
