"""Built-in skills: echo, template, http and llm. Each one does real work."""
