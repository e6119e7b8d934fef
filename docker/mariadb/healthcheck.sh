#!/bin/sh
# Healthy once the real server (not the first-start init server, which has its own socket) answers.
# The official image's options (--connect --innodb_initialized) are accepted and mean the same here.
exec mariadb-admin --socket=/run/mysqld/mysqld.sock ping --silent
