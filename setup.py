"""Ships the top-level ``migrations/`` folder inside the wheel as ``server/migrations``.

Everything else is declared in ``pyproject.toml``. The migrations stay at the top of the
repository (Alembic's usual place, where ``enforce db revision`` writes them); an installed
package has no repository beside it, so ``build_py`` copies them in and
``server.extensions.migrations_directory`` looks there first.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's migrations/ in place
        target = Path(self.build_lib) / "server" / "migrations"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / "migrations", target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithMigrations})
