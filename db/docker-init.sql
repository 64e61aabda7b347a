-- Creates the app database beside Temporal's own (docker-compose.temporal.yml).
CREATE DATABASE governed_runs OWNER temporal;
