"""The plugin contract: the hooks (hookspecs), the types they exchange, the plugin manager and hook tracing."""
