"""Restricted nominative access: who may read a restricted publication, the requests people make to be
added to that list, the French page data.gouv.fr links to (``/acces/{id}``), and the staff API for service
accounts.

The access list itself lives in the publication's manifest (``restricted_to``): changing it makes a new
revision (``publications.service.derive_revision``), so the regional store's record and its ACL follow
through the ordinary deliveries, and the change is audited like any other revision.
"""
