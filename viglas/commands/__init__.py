"""CLI command groups. Each module defines ``register(app)`` adding its commands.

Modules import heavy dependencies inside the command functions so that
``viglas --help`` stays fast.
"""

#: Command modules in the order their commands appear in ``viglas --help``.
COMMAND_MODULES = ("run", "study", "build", "md", "analyze", "potential", "export", "hpc")
