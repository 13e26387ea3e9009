"""The HTTP edge: thin routes that parse, call the domain modules and render (no logic of their own)."""
