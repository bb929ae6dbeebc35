"""Page *Publier*: a producer's manual deposit; preview (POST /plan), then confirm (POST /publications)."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from dashboard import forms, labels, schema, session, ui
from dashboard.client import ApiError, FileTuple

PREFIX = "pub_"
KEY_ERRORS = "publish_errors"  # {"message": str, "fields": {form field: [messages]}, "orphans": [...]}
KEY_PREVIEW = "publish_preview"  # {"fingerprint", "manifest", "files", "plan"}
KEY_DONE = "publish_done"  # the publication the API accepted last


def field_errors(name: str) -> None:
    """The API's messages for one field, right under it."""
    errors = (st.session_state.get(KEY_ERRORS) or {}).get("fields") or {}
    for message in errors.get(name, []):
        st.markdown(f":red[:material/error: {ui.escape(message)}]")


def organization_choices() -> list[str]:
    mine = session.organizations()
    if session.is_staff():
        every = [str(o.get("slug")) for o in session.all_organizations() if o.get("slug")]
        return list(dict.fromkeys([*mine, *every]))
    return mine


def draw_form(options: dict[str, list[str]]) -> tuple[forms.PublishForm, list[FileTuple]]:
    """Every widget of the form; returns what was typed and the uploaded files."""
    organization_names = {str(o.get("slug")): str(o.get("name")) for o in session.all_organizations()}
    choices = organization_choices()
    if not choices:
        st.error(
            "Votre compte n'est rattaché à aucune organisation : demandez à l'équipe OPenIG de vous y "
            "ajouter avant de publier."
        )
        st.stop()

    st.subheader("Description")
    organization = st.selectbox(
        "Organisation productrice",
        choices,
        format_func=lambda slug: f"{organization_names.get(slug, slug)} ({slug})",
        key=PREFIX + "organization",
        help="La publication appartient à cette organisation ; seuls ses membres pourront la modifier.",
    )
    field_errors("organization")
    title = st.text_input(
        "Titre",
        key=PREFIX + "title",
        max_chars=350,
        placeholder="Pistes cyclables de la métropole",
        help="Le titre tel qu'il apparaîtra sur data.gouv.fr et la Géoplateforme (3 caractères au moins).",
    )
    field_errors("title")
    description = st.text_area(
        "Description",
        key=PREFIX + "description",
        placeholder="Ce que contient le jeu de données, sa source, sa mise à jour…",
        help="Texte libre ; le Markdown simple est accepté par data.gouv.fr.",
    )
    field_errors("description")

    left, right = st.columns(2)
    with left:
        license_id = st.selectbox(
            "Licence",
            options["license"],
            index=options["license"].index("lov2") if "lov2" in options["license"] else 0,
            format_func=lambda v: labels.label(labels.LICENSES, v),
            key=PREFIX + "license",
            help="La licence Ouverte 2.0 d'Etalab est la licence de référence des administrations.",
        )
        field_errors("license")
    with right:
        frequency = st.selectbox(
            "Fréquence de mise à jour",
            options["frequency"],
            index=None,
            placeholder="Non précisée",
            format_func=lambda v: labels.label(labels.FREQUENCIES, v),
            key=PREFIX + "frequency",
            help="Le rythme auquel vous mettez la donnée à jour.",
        )
        field_errors("frequency")
    keywords = st.text_input(
        "Mots-clés",
        key=PREFIX + "keywords",
        placeholder="mobilité, vélo, aménagement",
        help="Séparés par des virgules.",
    )
    field_errors("keywords")
    start_col, end_col = st.columns(2)
    with start_col:
        temporal_start = st.date_input(
            "Couverture temporelle : début",
            value=None,
            min_value=date(1800, 1, 1),
            format="DD/MM/YYYY",
            key=PREFIX + "temporal_start",
            help="Première date couverte par les données (facultatif).",
        )
    with end_col:
        temporal_end = st.date_input(
            "Couverture temporelle : fin",
            value=None,
            min_value=date(1800, 1, 1),
            format="DD/MM/YYYY",
            key=PREFIX + "temporal_end",
            help="Dernière date couverte ; laissez vide pour une donnée en cours.",
        )
    field_errors("temporal")
    name_col, email_col = st.columns(2)
    with name_col:
        contact_name = st.text_input(
            "Contact : nom", key=PREFIX + "contact_name", placeholder="Service SIG", help="Facultatif."
        )
    with email_col:
        contact_email = st.text_input(
            "Contact : adresse électronique",
            key=PREFIX + "contact_email",
            placeholder="sig@example.fr",
            help="L'adresse que les réutilisateurs peuvent écrire (facultatif).",
        )
    field_errors("contact")

    st.subheader("Accès et services")
    access = st.radio(
        "Accès",
        options["access"],
        format_func=lambda v: {"open": "Ouvert à tous", "restricted": "Restreint à des ayants droit"}.get(
            v, v
        ),
        horizontal=True,
        key=PREFIX + "access",
        help=(
            "Une donnée restreinte n'est jamais envoyée en fichier sur data.gouv.fr : seule sa fiche y "
            "figure, et les fichiers sont servis par OPenIG aux seuls ayants droit."
        ),
    )
    field_errors("access")
    restricted_users = ""
    restricted_organizations: list[str] = []
    if access == "restricted":
        users_col, orgs_col = st.columns(2)
        with users_col:
            restricted_users = st.text_area(
                "Personnes autorisées",
                key=PREFIX + "restricted_users",
                placeholder="alice\nbruno@example.fr",
                help="Identifiants du SSO d'OPenIG, un par ligne.",
            )
        with orgs_col:
            restricted_organizations = st.multiselect(
                "Organisations autorisées",
                sorted(organization_names) or choices,
                format_func=lambda slug: organization_names.get(slug, slug),
                placeholder="Choisir des organisations",
                key=PREFIX + "restricted_organizations",
                help="Tous les membres de ces organisations pourront lire la donnée.",
            )
        field_errors("restricted_to")
    services = st.multiselect(
        "Services souhaités",
        options["services"],
        default=["download"] if "download" in options["services"] else [],
        format_func=lambda v: labels.label(labels.SERVICES, v),
        placeholder="Choisir des services",
        key=PREFIX + "services",
        help=(
            "Le broker choisit la plateforme qui rend chaque service (téléchargement sur data.gouv.fr, "
            "WMS/WFS sur la Géoplateforme…) ; l'aperçu vous le montre avant de publier."
        ),
    )
    field_errors("services")
    portals = st.text_input(
        "Sous-portails en marque blanche",
        key=PREFIX + "portals",
        placeholder="cc-grand-pic-saint-loup",
        help="Identifiants des sous-portails où la donnée doit aussi apparaître, séparés par des virgules.",
    )
    field_errors("portals")

    st.subheader("Ressources")
    uploaded = st.file_uploader(
        "Fichiers",
        accept_multiple_files=True,
        key=PREFIX + "files",
        help=(
            "Glissez-déposez vos fichiers ou parcourez votre poste : GeoPackage, GeoJSON, Shapefile zippé, "
            "CSV, GeoTIFF, PDF… Le broker reconnaît le format par son contenu et en déduit le système de "
            "coordonnées et l'emprise."
        ),
    )
    urls = st.text_area(
        "Ressources distantes (adresses)",
        key=PREFIX + "urls",
        placeholder="https://example.org/compteurs.csv",
        help="Une adresse par ligne : le broker référence ces ressources sans les copier.",
    )
    url_sync = None
    if forms.split_list(urls):
        url_sync = st.selectbox(
            "Resynchroniser les ressources distantes",
            options["sync"],
            index=None,
            placeholder="Non",
            format_func=lambda v: labels.label(labels.SYNC, v),
            key=PREFIX + "url_sync",
        )
    field_errors("resources")

    files: list[FileTuple] = [
        (f.name, f.getvalue(), f.type or "application/octet-stream") for f in uploaded or []
    ]
    form = forms.PublishForm(
        organization=str(organization or ""),
        title=title,
        description=description,
        license=license_id,
        frequency=frequency,
        keywords=keywords,
        temporal_start=temporal_start if isinstance(temporal_start, date) else None,
        temporal_end=temporal_end if isinstance(temporal_end, date) else None,
        contact_name=contact_name,
        contact_email=contact_email,
        access=str(access),
        restricted_users=restricted_users,
        restricted_organizations=list(restricted_organizations),
        services=list(services),
        portals=portals,
        file_names=[name for name, _, _ in files],
        urls=urls,
        url_sync=url_sync,
    )
    return form, files


def remember_errors(error: ApiError) -> None:
    grouped, orphans = forms.errors_by_field(error.fields)
    st.session_state[KEY_ERRORS] = {"message": error.message, "fields": grouped, "orphans": orphans}


def show_plan(plan: dict[str, Any]) -> None:
    """The decision (needs with category badges and reasons), the targets, and each target's pre-flight."""
    decision = plan.get("decision") or {}
    titles = session.target_titles()
    need_titles = session.need_titles()
    category = decision.get("category")
    st.markdown(
        f"#### Catégorie de la publication : {ui.category_badge(category)} "
        f"— {ui.escape(labels.CATEGORY_MEANING.get(str(category), ''))}"
    )
    st.markdown("**Besoins détectés**")
    for need in decision.get("needs") or []:
        platforms = ", ".join(labels.target_name(p, titles) for p in need.get("platforms") or [])
        name = need_titles.get(str(need.get("need")), str(need.get("need")))
        st.markdown(
            f"- {ui.category_badge(need.get('category'))} **{ui.escape(name)}** "
            f"→ {ui.escape(platforms or '—')}  \n"
            f"  :gray[{ui.escape(need.get('reason') or '')}]"
        )
    st.markdown("**Où la publication sera livrée**")
    preflight = plan.get("preflight") or {}
    plan_targets = decision.get("targets") or [{"target": t} for t in preflight]
    if not plan_targets:
        st.caption("Aucune cible.")
    for target in plan_targets:
        name = str(target.get("target"))
        with st.container(border=True):
            st.markdown(f"**{ui.escape(labels.target_name(name, titles))}**")
            served = [need_titles.get(n, n) for n in target.get("needs") or []]
            if served:
                st.caption("Besoins servis : " + ", ".join(served))
            held = [need_titles.get(n, n) for n in target.get("held_by") or []]
            if held:
                st.warning("Livraison suspendue en attendant une évolution nationale : " + ", ".join(held))
            problems = preflight.get(name) or []
            if not problems:
                st.markdown(ui.status_markdown("Contrôle préalable : rien à signaler", "success"))
            for problem in problems:
                tone = {"error": "error", "warning": "warning"}.get(str(problem.get("severity")), "info")
                where = f" ({problem['resource']})" if problem.get("resource") else ""
                st.markdown(ui.status_markdown(f"{problem.get('message')}{where}", tone))
    resources = plan.get("resources") or []
    if resources:
        st.markdown("**Ressources inspectées**")
        st.dataframe(
            [
                {
                    "Nom": r.get("name") or r.get("url"),
                    "Format": r.get("format") or "—",
                    "Système de coordonnées": r.get("crs") or "—",
                    "Emprise (WGS 84)": ", ".join(f"{v:.4f}" for v in r.get("extent_wgs84") or []) or "—",
                    "Taille": labels.file_size(r.get("size")),
                }
                for r in resources
            ],
            hide_index=True,
            width="stretch",
        )


def main() -> None:
    ui.require_login()
    st.title("Publier un jeu de données")
    st.caption(
        "Décrivez votre jeu de données une seule fois : le broker en déduit les besoins, choisit les "
        "plateformes (data.gouv.fr, Géoplateforme, entrepôt régional) et livre partout où il faut."
    )
    if not session.can_write():
        st.info("Votre compte est en lecture seule : la publication est réservée aux producteurs.")
        st.stop()

    done = st.session_state.pop(KEY_DONE, None)
    if done:
        st.success(
            f"Publication « {ui.escape(done.get('title'))} » acceptée (révision {done.get('revision')}) : "
            "le broker la livre maintenant sur chaque cible.",
            icon=":material/task_alt:",
        )
        ui.delivery_lines(done.get("deliveries") or [], session.need_titles(), session.target_titles())
        st.page_link(
            "views/mes_publications.py", label="Suivre dans Mes publications", icon=":material/folder_open:"
        )

    errors = st.session_state.get(KEY_ERRORS)
    if errors:
        st.error(str(errors.get("message")), icon=":material/error:")
        for line in errors.get("orphans") or []:
            st.markdown(f"- {ui.escape(line)}")

    options = schema.enums_from_schema(session.manifest_schema() or {})
    form, files = draw_form(options)
    manifest = forms.build_manifest(form)
    current = forms.fingerprint(manifest, files)

    st.divider()
    if st.button("Prévisualiser", type="secondary", icon=":material/preview:"):
        try:
            with st.spinner("Analyse des fichiers et classement des besoins…"):
                plan = session.client().plan(manifest, files)
        except ApiError as error:
            st.session_state.pop(KEY_PREVIEW, None)
            if error.status == 422:
                remember_errors(error)
                st.rerun()
            session.show_error(error, "Aperçu impossible")
        else:
            st.session_state.pop(KEY_ERRORS, None)
            st.session_state[KEY_PREVIEW] = {"fingerprint": current, "plan": plan}
            st.rerun()

    preview = st.session_state.get(KEY_PREVIEW)
    if not preview:
        st.caption(
            "Prévisualisez pour voir où la publication ira et ce qu'il faut corriger avant de publier."
        )
        return
    st.subheader("Aperçu")
    show_plan(preview["plan"])
    if preview["fingerprint"] != current:
        st.warning("Le formulaire a changé depuis l'aperçu : prévisualisez à nouveau avant de confirmer.")
        return
    blocking = [
        p
        for problems in (preview["plan"].get("preflight") or {}).values()
        for p in problems
        if p.get("severity") == "error"
    ]
    if blocking:
        st.warning(
            "Le contrôle préalable signale des erreurs : la publication sera acceptée, mais les livraisons "
            "concernées échoueront tant qu'elles ne sont pas corrigées."
        )
    if st.button("Confirmer la publication", type="primary", icon=":material/send:"):
        try:
            with st.spinner("Envoi au broker…"):
                accepted = session.client().publish(manifest, files)
        except ApiError as error:
            if error.status == 422:
                remember_errors(error)
                st.session_state.pop(KEY_PREVIEW, None)
                st.rerun()
            session.show_error(error, "Publication refusée")
            return
        st.session_state.pop(KEY_PREVIEW, None)
        st.session_state.pop(KEY_ERRORS, None)
        st.session_state[KEY_DONE] = accepted
        st.rerun()


main()
