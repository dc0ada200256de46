"""CDRs and call-event traces: Redis stream events → rows → Apache Iceberg tables.

``events`` parses stream entries, ``build`` turns them into rows (pure), ``tables`` declares the
Iceberg tables, ``lake`` commits and reads them, ``collector`` is the service that moves events
exactly once, ``query`` answers ``GET /v1/calls`` and ``sipio cdr`` / ``sipio trace``.
"""
