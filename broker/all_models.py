"""Import every table so that SQLModel's metadata (and Alembic) sees the whole schema."""

from broker.auth import models as auth_models
from broker.deliveries import models as delivery_models
from broker.events import models as event_models
from broker.organizations import models as organization_models
from broker.publications import models as publication_models
from regional_store import models as regional_models

__all__ = [
    "auth_models",
    "delivery_models",
    "event_models",
    "organization_models",
    "publication_models",
    "regional_models",
]
