"""The rehearsal simulator: Dataverse + Finance and Operations + dual-write in one ASGI app.

It stands in for Microsoft's services and shares no code with cutover's clients: nothing here
imports from ``cutover`` outside ``cutover.sim`` except :mod:`cutover.errors`.

Modules (each imports only those above it in its own column; no import circle):

  __main__.py          ``python -m cutover.sim serve --db PATH [--port N] [--window-scale F]``
  server.py            serving on 127.0.0.1, in the foreground or in a thread
  app.py               ``create_app``: composes the gateway, the admin API and the identity platform
  gateway.py           API request routing, bearer tokens, faults, service protection, request log
  admin.py             the ``/_sim/…`` admin API
  identity_platform.py ``/_sim/token`` and the ``login.microsoftonline.com`` stand-in (``/_sim/login/…``)
  adminkit.py          what every admin endpoint shares: JSON bodies, answers, refusals
  simulator.py         the running simulator's state (database, services, protection, request logs)
  dataverse_service.py the Dataverse Web API subset; invoices.py its invoice actions; batch.py ``$batch``
  fno_service.py       the F&O OData subset
  query.py, odata_filter.py, metadata.py, messages.py   reads, ``$filter``, ``$metadata``, request values
  dualwrite.py         dual-write maps and what reaches F&O
  protection.py        service-protection limits, the cost model, injected faults
  auth.py              identities, tokens
  worldfile.py         creating a seeded database file and its legacy extract (for the CLI)
  seed.py              the deterministic world generator
  reference.py         fixed reference data shared by the generator and dual-write
  schema.py, store.py  entity sets and the SQLite layout
  errors.py            every exception class and the Dataverse error codes
"""
