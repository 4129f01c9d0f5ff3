"""Data files shipped with kyso: the demo province's units."""
