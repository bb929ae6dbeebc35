"""The emulator's state: entities, files, tokens, faults, and the clock that advances asynchronous statuses.

Entities are plain JSON-able dicts shaped like the API's DTOs (geoplateforme-api.md, [TYPES]); what the
API never shows lives under the ``"__"`` key (owning datastore, timers, logs). Statuses advance lazily:
every request first calls :meth:`Store.advance`, which applies each transition whose time has come (one
transition every ``step_seconds``, times the ``slow_factor`` fault). The result is the same as a background
clock, without a thread.

With a ``state_dir`` the state is written to ``state.json`` after each change and the files live under
``state_dir/files``, so an emulator restarted on the same directory carries on.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators.geoplateforme import catalogue, checks
from emulators.geoplateforme.errors import ApiError

DATASTORE_KINDS = (
    "uploads",
    "check_executions",
    "executions",
    "stored_data",
    "statics",
    "configurations",
    "offerings",
    "metadata",
)
GLOBAL_KINDS = (
    "communities",
    "datastores",
    "endpoints",
    "processings",
    "checks",
    "users",
    "clients",
    "tokens",
)
COUNTED = ("uploads", "executions", "stored_data", "statics", "configurations", "offerings", "metadata")

LABELS = {
    "uploads": "La livraison",
    "check_executions": "L'exécution de vérification",
    "executions": "L'exécution de traitement",
    "stored_data": "La donnée stockée",
    "statics": "Le fichier statique",
    "configurations": "La configuration",
    "offerings": "L'offre",
    "metadata": "La métadonnée",
    "processings": "Le traitement",
    "endpoints": "Le point d'accès",
    "datastores": "L'entrepôt",
}

DEFAULT_FAULTS: dict[str, Any] = {
    "fail_next": 0,
    "fail_status": 503,
    "retry_after": None,
    "slow_factor": 1.0,
    "unstable_next_execution": False,
    "unstable_next_offering": False,
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return str(uuid.uuid4())


def public(entity: dict[str, Any]) -> dict[str, Any]:
    """The entity without its private part."""
    return {key: value for key, value in entity.items() if key != "__"}


class Store:
    def __init__(self, *, step_seconds: float, state_dir: Path | None) -> None:
        self.lock = threading.RLock()
        self.step_seconds = step_seconds
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="gpf-emulator-")
            self.root = Path(self._tmp.name)
            self.persist = False
        else:
            self.root = Path(state_dir)
            self.root.mkdir(parents=True, exist_ok=True)
            self.persist = True
        self.data: dict[str, dict[str, dict[str, Any]]] = {
            kind: {} for kind in DATASTORE_KINDS + GLOBAL_KINDS
        }
        self.created: dict[str, Counter[str]] = {}
        self.faults: dict[str, Any] = dict(DEFAULT_FAULTS)
        self.token_ttl = 300
        self.tokens_issued = 0
        self.dirty = False
        self._load()
        self._ensure_global()

    # ------------------------------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        with self.lock:
            self.save()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _load(self) -> None:
        if not self.persist or not self._state_file.is_file():
            return
        saved = json.loads(self._state_file.read_text())
        for kind in self.data:
            self.data[kind] = saved.get("data", {}).get(kind, {})
        self.created = {ds: Counter(counts) for ds, counts in saved.get("created", {}).items()}
        self.faults = {**DEFAULT_FAULTS, **saved.get("faults", {})}
        self.token_ttl = saved.get("token_ttl", self.token_ttl)
        self.tokens_issued = saved.get("tokens_issued", 0)

    def save(self) -> None:
        if not self.persist or not self.dirty:
            return
        payload = {
            "data": self.data,
            "created": {ds: dict(counts) for ds, counts in self.created.items()},
            "faults": self.faults,
            "token_ttl": self.token_ttl,
            "tokens_issued": self.tokens_issued,
        }
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        os.replace(tmp, self._state_file)
        self.dirty = False

    def _ensure_global(self) -> None:
        if self.data["checks"]:
            return
        for spec in catalogue.CHECKS:
            check = {"_id": new_id(), **spec}
            self.data["checks"][check["_id"]] = check
        # The public client of the SDK (§1, "Grant types observed"): password grant, no secret needed.
        self.data["clients"]["gpf-warehouse"] = {
            "client_id": "gpf-warehouse",
            "secret": None,
            "service_account": None,
            "direct_grant": True,
        }
        self.dirty = True

    # ------------------------------------------------------------------------------------------- entities

    def step(self) -> float:
        return self.step_seconds * float(self.faults.get("slow_factor") or 1.0)

    def files_dir(self, kind: str, entity_id: str) -> Path:
        return self.root / "files" / kind / entity_id

    def add(self, kind: str, datastore: str | None, entity: dict[str, Any]) -> dict[str, Any]:
        entity.setdefault("_id", new_id())
        entity.setdefault("__", {})["datastore"] = datastore
        self.data[kind][entity["_id"]] = entity
        if datastore is not None:
            self.created.setdefault(datastore, Counter())[kind] += 1
        self.dirty = True
        return entity

    def get(self, kind: str, datastore: str | None, entity_id: str) -> dict[str, Any]:
        entity = self.data[kind].get(entity_id)
        if entity is None or (datastore is not None and entity["__"].get("datastore") != datastore):
            label = LABELS.get(kind, "L'entité")
            raise ApiError(404, f"{label} {entity_id} n'existe pas.")
        return entity

    def items(self, kind: str, datastore: str | None = None) -> list[dict[str, Any]]:
        return [
            entity
            for entity in self.data[kind].values()
            if datastore is None or entity.get("__", {}).get("datastore") == datastore
        ]

    def remove(self, kind: str, entity_id: str) -> None:
        self.data[kind].pop(entity_id, None)
        directory = self.files_dir(kind, entity_id)
        if directory.exists():
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
        self.dirty = True

    def counts(self, datastore: str | None = None) -> dict[str, int]:
        return {kind: len(self.items(kind, datastore)) for kind in COUNTED}

    def created_counts(self, datastore: str | None = None) -> dict[str, int]:
        total: Counter[str] = Counter()
        for ds, counts in self.created.items():
            if datastore is None or ds == datastore:
                total.update(counts)
        return {kind: total.get(kind, 0) for kind in COUNTED}

    # ------------------------------------------------------------------------------------------- faults

    def consume_fault(self, name: str) -> bool:
        if self.faults.get(name):
            self.faults[name] = False
            self.dirty = True
            return True
        return False

    # ------------------------------------------------------------------------------------------- identities

    def create_organisation(
        self,
        *,
        technical_name: str,
        name: str,
        base_url: str,
        client_id: str | None,
        client_secret: str | None,
        username: str | None,
        password: str | None,
        totp_secret: str | None,
        endpoint_quota: int,
    ) -> tuple[dict[str, Any], bool]:
        """A community, its datastore (endpoints of every type, open and private), a service account."""
        for community in self.data["communities"].values():
            if community["technical_name"] == technical_name:
                return self.organisation_view(community, base_url), False

        supervisor = new_id()
        community = {
            "_id": new_id(),
            "name": name,
            "technical_name": technical_name,
            "contact": f"contact@{technical_name}.example",
            "public": False,
            "supervisor": {"_id": supervisor},
        }
        datastore_id = new_id()
        processings = []
        for spec in catalogue.PROCESSINGS:
            processing = {"_id": new_id(), **{key: value for key, value in spec.items() if key != "kind"}}
            processing["__"] = {"kind": spec["kind"], "datastore": datastore_id}
            self.data["processings"][processing["_id"]] = processing
            processings.append(processing["_id"])
        endpoints = []
        for endpoint_type, urls in catalogue.ENDPOINT_KINDS.items():
            for is_open in (True, False):
                root = base_url.rstrip("/") + ("/" if is_open else "/private/")
                suffix = "" if is_open else "-private"
                endpoint: dict[str, Any] = {
                    "_id": new_id(),
                    "name": f"{catalogue.ENDPOINT_TITLES[endpoint_type]} {'public' if is_open else 'privé'}"
                    f" ({technical_name})",
                    "technical_name": f"gpf-{endpoint_type.lower()}{suffix}-{technical_name}".lower(),
                    "type": endpoint_type,
                    "open": is_open,
                    "urls": [{"type": url_type, "url": root + path} for url_type, path in urls],
                    "metadata_fi": f"gpf-{endpoint_type.lower()}{suffix}",
                }
                self.data["endpoints"][endpoint["_id"]] = endpoint
                quota = 100 if endpoint_type == "METADATA" else endpoint_quota
                endpoints.append({"endpoint": endpoint["_id"], "quota": quota})
        storages = [{"_id": new_id(), **spec} for spec in catalogue.STORAGES]
        datastore: dict[str, Any] = {
            "_id": datastore_id,
            "name": name,
            "technical_name": technical_name,
            "active": True,
            "community": community["_id"],
            "processings": processings,
            "checks": list(self.data["checks"]),
            "endpoints": endpoints,
            "storages": storages,
        }
        community["datastore"] = {"_id": datastore_id, "active": True}
        self.data["communities"][community["_id"]] = community
        self.data["datastores"][datastore_id] = datastore

        client_id = client_id or f"openig-{technical_name}"
        client_secret = client_secret or secrets.token_urlsafe(24)
        account = self._user(
            email=f"service-account-{client_id}@emulator.invalid",
            first_name="Compte de service",
            last_name=client_id,
            technical=True,
            community=community["_id"],
        )
        self.data["clients"][client_id] = {
            "client_id": client_id,
            "secret": client_secret,
            "service_account": account["_id"],
            "direct_grant": True,
        }
        community["__"] = {"client_id": client_id, "username": None}
        if username:
            human = self._user(
                email=f"{username}@emulator.invalid",
                first_name=username,
                last_name=name,
                technical=False,
                community=community["_id"],
            )
            human["__"] = {"username": username, "password": password or "", "totp_secret": totp_secret}
            community["__"]["username"] = username
        self.dirty = True
        return self.organisation_view(community, base_url), True

    def _user(
        self, *, email: str, first_name: str, last_name: str, technical: bool, community: str
    ) -> dict[str, Any]:
        user: dict[str, Any] = {
            "_id": new_id(),
            "email": email,
            "first_name": first_name,
            "last_name": last_name,
            "creation": now_iso(),
            "technical": technical,
            "administrator": False,
            "communities": [{"community": community, "rights": list(catalogue.RIGHTS)}],
        }
        self.data["users"][user["_id"]] = user
        return user

    def organisation_view(self, community: dict[str, Any], base_url: str) -> dict[str, Any]:
        private = community.get("__", {})
        client = self.data["clients"].get(private.get("client_id", ""), {})
        view = {
            "community_id": community["_id"],
            "datastore_id": community["datastore"]["_id"],
            "technical_name": community["technical_name"],
            "name": community["name"],
            "client_id": client.get("client_id"),
            "client_secret": client.get("secret"),
            "username": private.get("username"),
            "api_url": base_url.rstrip("/") + "/api",
            "token_url": base_url.rstrip("/") + "/realms/geoplateforme/protocol/openid-connect/token",
            "csw_url": base_url.rstrip("/") + "/csw",
        }
        return view

    def user_by_username(self, username: str) -> dict[str, Any] | None:
        for user in self.data["users"].values():
            if user.get("__", {}).get("username") == username:
                return user
        return None

    def issue_token(self, user_id: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        self.data["tokens"][token] = {"user": user_id, "expires_at": time.time() + self.token_ttl}
        self.tokens_issued += 1
        self.dirty = True
        return {
            "access_token": token,
            "expires_in": self.token_ttl,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def user_for_token(self, token: str) -> dict[str, Any] | None:
        record = self.data["tokens"].get(token)
        if record is None:
            return None
        if record["expires_at"] < time.time():
            self.data["tokens"].pop(token, None)
            self.dirty = True
            return None
        return self.data["users"].get(record["user"])

    def revoke_tokens(self) -> int:
        count = len(self.data["tokens"])
        self.data["tokens"].clear()
        self.dirty = True
        return count

    def datastore_for(self, user: dict[str, Any], datastore_id: str) -> dict[str, Any]:
        datastore = self.data["datastores"].get(datastore_id)
        if datastore is None:
            raise ApiError(404, f"L'entrepôt {datastore_id} n'existe pas.")
        if not any(member["community"] == datastore["community"] for member in user.get("communities", [])):
            raise ApiError(403, "Vous n'êtes pas membre de la communauté de cet entrepôt.")
        return datastore

    def endpoint_use(self, datastore_id: str, endpoint_id: str) -> int:
        return sum(
            1
            for offering in self.items("offerings", datastore_id)
            if offering["endpoint"]["_id"] == endpoint_id
        )

    # ------------------------------------------------------------------------------------------- clock

    def advance(self) -> None:
        """Apply every status transition whose time has come (call under the lock)."""
        now = time.time()
        for kind, tick in (
            ("uploads", self._tick_upload),
            ("executions", self._tick_execution),
            ("offerings", self._tick_offering),
        ):
            for entity in list(self.data[kind].values()):
                private = entity["__"]
                while private.get("next_at") is not None and private["next_at"] <= now:
                    tick(entity, private)
                    self.dirty = True
                    if entity["_id"] not in self.data[kind]:
                        break

    def schedule(self, entity: dict[str, Any], *, first: bool = True) -> None:
        private = entity["__"]
        base = time.time() if first or private.get("next_at") is None else private["next_at"]
        private["next_at"] = base + self.step()

    # uploads: CLOSED -> CHECKING -> CLOSED | UNSTABLE (§2.1; UNSTABLE after a failure is UNCONFIRMED)

    def close_upload(self, upload: dict[str, Any]) -> None:
        """Close and run the checks every upload of this type gets (§2.1 step 5)."""
        defaults = [
            c["_id"] for c in self.data["checks"].values() if upload["type"] in c["default_uploads_check"]
        ]
        upload["status"] = "CLOSED"
        upload["__"]["checks"] = []
        self.run_checks(upload, defaults)

    def run_checks(self, upload: dict[str, Any], check_ids: list[str]) -> None:
        """Start check executions on a closed upload; they pass WAITING -> PROGRESS -> SUCCESS | FAILURE."""
        executions = []
        for check_id in check_ids:
            check = self.data["checks"][check_id]
            execution: dict[str, Any] = {
                "_id": new_id(),
                "check": {"_id": check["_id"], "name": check["name"]},
                "status": "WAITING",
                "creation": now_iso(),
                "upload": {"_id": upload["_id"], "name": upload["name"], "type": upload["type"]},
            }
            self.add("check_executions", upload["__"]["datastore"], execution)
            execution["__"]["logs"] = []
            executions.append(execution["_id"])
        upload["__"]["checks"] = [*upload["__"].get("checks", []), *executions]
        upload["__"]["pending"] = executions
        upload["__"]["phase"] = "closed"
        self.schedule(upload)

    def _tick_upload(self, upload: dict[str, Any], private: dict[str, Any]) -> None:
        executions = [
            self.data["check_executions"][i]
            for i in private.get("pending", private.get("checks", []))
            if i in self.data["check_executions"]
        ]
        if private.get("phase") == "closed":
            upload["status"] = "CHECKING"
            for execution in executions:
                execution["status"] = "PROGRESS"
                execution["start"] = now_iso()
            private["phase"] = "checking"
            self.schedule(upload, first=False)
            return
        if private.get("phase") == "checking":
            root = self.files_dir("uploads", upload["_id"])
            passed = True
            for execution in executions:
                result = self._run_check(execution["check"]["name"], root, upload)
                execution["status"] = "SUCCESS" if result.passed else "FAILURE"
                execution["finish"] = now_iso()
                execution["__"]["logs"] = result.logs
                passed = passed and result.passed
            others = [
                self.data["check_executions"][i]["status"]
                for i in private.get("checks", [])
                if i in self.data["check_executions"] and i not in private.get("pending", [])
            ]
            passed = passed and "FAILURE" not in others
            upload["status"] = "CLOSED" if passed else "UNSTABLE"
            upload["size"] = sum(path.stat().st_size for path in checks.data_files(root))
        private["phase"] = None
        private["next_at"] = None

    @staticmethod
    def _run_check(name: str, root: Path, upload: dict[str, Any]) -> checks.CheckResult:
        try:
            if name == catalogue.CHECK_STANDARD:
                return checks.check_standard(root, upload["type"])
            if name == catalogue.CHECK_VECTOR:
                return checks.check_vector(root, upload["srs"])
            if name == catalogue.CHECK_RASTER:
                return checks.check_raster(root, upload["srs"])
        except Exception as exc:  # a check that crashes fails, as on the platform
            result = checks.CheckResult()
            result.error(f"Erreur inattendue pendant la vérification : {exc}")
            return result
        return checks.CheckResult()

    # executions: CREATED -> WAITING -> PROGRESS -> SUCCESS | FAILURE | ABORTED (§2.2 step 9)

    def launch_execution(self, execution: dict[str, Any]) -> None:
        execution["status"] = "WAITING"
        execution["launch"] = now_iso()
        execution["__"]["fail"] = self.consume_fault("unstable_next_execution")
        self.schedule(execution)

    def _tick_execution(self, execution: dict[str, Any], private: dict[str, Any]) -> None:
        stored = self.data["stored_data"].get(execution["output"]["stored_data"]["_id"])
        if execution["status"] == "WAITING":
            execution["status"] = "PROGRESS"
            execution["start"] = now_iso()
            if stored is not None:
                stored["status"] = "MODIFYING" if stored["__"].get("generated") else "GENERATING"
            private.setdefault("logs", []).append(checks.log_line("INFO", "Traitement démarré."))
            self.schedule(execution, first=False)
            return
        if execution["status"] == "PROGRESS":
            logs = private.setdefault("logs", [])
            try:
                if private.get("fail"):
                    raise RuntimeError("Échec provoqué par l'injection de fautes de l'émulateur.")
                if stored is None:
                    raise RuntimeError("La donnée stockée en sortie a disparu.")
                self._produce(execution, stored, logs)
            except Exception as exc:
                execution["status"] = "FAILURE"
                logs.append(checks.log_line("ERROR", str(exc)))
                if stored is not None:
                    stored["status"] = "UNSTABLE"
            else:
                execution["status"] = "SUCCESS"
                stored["status"] = "GENERATED"
                stored["__"]["generated"] = True
                logs.append(checks.log_line("INFO", "Traitement terminé avec succès."))
            execution["finish"] = now_iso()
        private["next_at"] = None

    def _produce(self, execution: dict[str, Any], stored: dict[str, Any], logs: list[str]) -> None:
        processing = self.data["processings"][execution["processing"]["_id"]]
        kind = processing["__"]["kind"]
        uploads = [self.data["uploads"].get(item["_id"]) for item in execution["inputs"]["upload"]]
        if any(upload is None for upload in uploads):
            raise RuntimeError("Une livraison en entrée a été supprimée avant la fin du traitement.")
        roots = [self.files_dir("uploads", upload["_id"]) for upload in uploads if upload is not None]
        parameters = execution.get("parameters") or {}
        if kind == "vector-db":
            relations: list[dict[str, Any]] = []
            extents = []
            srs = str(parameters.get("srs") or (uploads[0] or {}).get("srs") or "EPSG:4326")
            for root in roots:
                result = checks.integrate_vector(root, srs)
                relations.extend(result["relations"])
                if result["extent"]:
                    extents.append(result["extent"])
            stored["type_infos"] = {"relations": relations}
            stored["srs"] = srs
            stored["extent"] = extents[0] if extents else None
            stored["size"] = sum(path.stat().st_size for root in roots for path in checks.data_files(root))
            logs.append(checks.log_line("INFO", f"{len(relations)} table(s) intégrée(s)."))
        elif kind == "raster-pyramid":
            bounds, _resolution = None, None
            for root in roots:
                bounds, _resolution = checks.raster_extent(root)
            bottom = int(str(parameters.get("bottom") or 18))
            top = int(str(parameters.get("top") or max(0, bottom - 8)))
            if top > bottom:
                raise RuntimeError(
                    f"Le niveau du haut ({top}) est plus détaillé que celui du bas ({bottom})."
                )
            stored["type_infos"] = {
                "tms": str(parameters.get("tms")),
                "levels": [str(level) for level in range(top, bottom + 1)],
                "channels_format": "UINT8",
                "channels_number": 3,
                "compression": str(parameters.get("compression") or "jpg").upper(),
                "nodata_value": "255,255,255",
            }
            stored["srs"] = "EPSG:3857"
            stored["extent"] = checks.extent_polygon(bounds)
            stored["size"] = sum(path.stat().st_size for root in roots for path in checks.data_files(root))
            logs.append(checks.log_line("INFO", f"Pyramide calculée du niveau {top} au niveau {bottom}."))
        elif kind == "vector-pyramid":
            bottom = int(str(parameters.get("bottom_level")))
            top = int(str(parameters.get("top_level")))
            if top > bottom:
                raise RuntimeError(
                    f"Le niveau du haut ({top}) est plus détaillé que celui du bas ({bottom})."
                )
            source_ids = [item["_id"] for item in execution["inputs"]["stored_data"]]
            sources = [self.data["stored_data"].get(i) for i in source_ids]
            if any(source is None for source in sources):
                raise RuntimeError("Une donnée stockée en entrée a été supprimée avant la fin du traitement.")
            relations = [
                r
                for source in sources
                if source
                for r in (source.get("type_infos") or {}).get("relations", [])
            ]
            stored["type_infos"] = {
                "tms": "PM",
                "levels": [str(level) for level in range(top, bottom + 1)],
                "relations": relations,
            }
            stored["srs"] = "EPSG:3857"
            stored["extent"] = next((source.get("extent") for source in sources if source), None)
            logs.append(
                checks.log_line("INFO", f"Tuiles vectorielles calculées du niveau {top} au niveau {bottom}.")
            )
        elif kind == "archive":
            files = [path for root in roots for path in checks.data_files(root)]
            stored["type_infos"] = {"files_number": len(files), "files": sorted(path.name for path in files)}
            stored["size"] = sum(path.stat().st_size for path in files)
            logs.append(checks.log_line("INFO", f"{len(files)} fichier(s) recopié(s)."))
        else:
            raise RuntimeError(f"Le traitement « {processing['name']} » n'est pas émulé.")

    # offerings: PUBLISHING -> PUBLISHED | UNSTABLE; MODIFYING -> PUBLISHED; UNPUBLISHING -> gone (§2.5, §2.6)

    def _tick_offering(self, offering: dict[str, Any], private: dict[str, Any]) -> None:
        status = offering["status"]
        if status == "PUBLISHING":
            offering["status"] = "UNSTABLE" if private.get("fail") else "PUBLISHED"
        elif status == "MODIFYING":
            offering["status"] = "PUBLISHED"
        elif status == "UNPUBLISHING":
            self.remove("offerings", offering["_id"])
        private["next_at"] = None

    def configuration_status(self, configuration_id: str) -> str:
        statuses = [
            offering["status"]
            for offering in self.data["offerings"].values()
            if offering["configuration"]["_id"] == configuration_id
        ]
        if "MODIFYING" in statuses:
            return "SYNCHRONIZING"
        if any(status in ("PUBLISHED", "UNPUBLISHING", "UNSTABLE") for status in statuses):
            return "PUBLISHED"
        return "UNPUBLISHED"


@contextlib.contextmanager
def locked(store: Store) -> Iterator[Store]:
    """Hold the store's lock, bring statuses up to date, and save afterwards."""
    with store.lock:
        store.advance()
        try:
            yield store
        finally:
            store.save()
