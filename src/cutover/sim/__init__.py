"""The rehearsal simulator: Dataverse + Finance and Operations + dual-write in one ASGI app.

It stands in for Microsoft's services and shares no code with cutover's clients.
"""
