"""Files installed into other places: the POSIX `claude` shim template and the Node SDK spawn module.

Shipped inside the package as `claude_guard.shims` (see pyproject.toml) so `claude-guard install` can
read them from an installed wheel as well as from a checkout.
"""
