"""Database foundations: the declarative base, engines, sessions and migrations."""

from governance.db.base import Base, utcnow
from governance.db.engine import make_engine, make_sessionmaker

__all__ = ["Base", "make_engine", "make_sessionmaker", "utcnow"]
