"""Identity and access (DESIGN §6): the broker as an OIDC resource server.

Bearer JWTs from Keycloak (or from the local issuer of ``broker token issue``) are validated against their
issuer's JWKS, mapped to a :class:`~broker.auth.principal.Principal` (broker roles and organisations), and
checked by the rules of :mod:`broker.auth.dependencies`. Machine clients are service accounts bound to one
organisation and one role. There is no switch that turns authentication off.
"""
