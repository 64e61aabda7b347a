"""Read queries: plain models out of the database, never ORM objects."""
