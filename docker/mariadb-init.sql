-- The calibration database beside Dagster's own; Alembic (the migrate service) creates its tables.
CREATE DATABASE IF NOT EXISTS calibration CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
GRANT ALL PRIVILEGES ON calibration.* TO 'b2cal'@'%';
