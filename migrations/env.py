"""Alembic environment for the calibration database.

``b2cal db ...`` (b2cal_assets.db.migrate) hands over an open connection in
``config.attributes["connection"]``; the plain ``alembic`` command uses ``sqlalchemy.url`` from
alembic.ini or ``$B2CAL_DATABASE_URL``.
"""

from logging.config import fileConfig

from alembic import context
from sqlalchemy.pool import NullPool

from b2cal_assets.db.engine import create_database_engine, database_url
from b2cal_assets.db.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def run_with(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or database_url()
    engine = create_database_engine(url, foreign_keys=False, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
