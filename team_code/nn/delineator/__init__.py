"""The learned wave delineator, a package; :mod:`team_code.nn.delineator.post` holds all of
it and every name of that module is re-exported here."""

from team_code.nn.delineator import post as _post

globals().update({k: v for k, v in vars(_post).items() if not k.startswith("__")})
__all__ = _post.__all__
