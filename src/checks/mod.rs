//! Health checks the agent runs: HTTP, TCP, TTL and script checks.
