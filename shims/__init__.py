"""Files installed into other places: the POSIX `claude` shim template and the Node SDK spawn module.

They live at the top of the repository, beside the package rather than in it, and install as the subpackage
`claude_guard.shims` (package-dir in pyproject.toml) so `claude-guard install` reads them with importlib.resources
from a wheel and from a checkout alike.
"""
