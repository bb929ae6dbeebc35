"""Import every table so that SQLModel's metadata (and Alembic) sees the whole schema."""

from broker.access import models as access_models
from broker.auth import models as auth_models
from broker.deliveries import models as delivery_models
from broker.events import models as event_models
from broker.gaps import models as gap_models
from broker.migration import models as migration_models
from broker.organizations import models as organization_models
from broker.publications import models as publication_models
from broker.remote import models as remote_models
from broker.sftp import models as sftp_models
from broker.stats import models as stats_models
from broker.uploads import models as upload_models
from regional_store import models as regional_models

__all__ = [
    "access_models",
    "auth_models",
    "delivery_models",
    "event_models",
    "gap_models",
    "migration_models",
    "organization_models",
    "publication_models",
    "regional_models",
    "remote_models",
    "sftp_models",
    "stats_models",
    "upload_models",
]
