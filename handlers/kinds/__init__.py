"""The built-in task kinds, one declaration per module (each exports ``KIND``).

A catalog table ``[kinds.NAME]`` with neither ``effect`` nor ``webhook`` means the module
``handlers.kinds.NAME``. Nothing imports this package's modules by name: the registry finds
them from the catalog, exactly as it finds a shop's own ``effect = "module:attribute"``.
"""
