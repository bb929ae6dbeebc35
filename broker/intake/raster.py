"""Rasters read with rasterio: size, bands, types, CRS, extents, overviews, nodata, COG validity.

A GeoTIFF is told apart from a Cloud Optimized GeoTIFF by rio-cogeo's ``cog_validate`` (tiling,
overviews, IFD order), not by its name. The first and last blocks of band 1 are decoded so that a
truncated file is refused now rather than failing on a platform later (peers.md §10, complaint 6).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from broker.intake.detect import FileDescription
from broker.intake.formats import FORMATS, IntakeRefused, crs_code, extent_warnings, wgs84_extent

logger = logging.getLogger(__name__)

# GDAL writes .aux.xml next to a file when asked for statistics; PAM off keeps the blob store untouched.
# EMPTY_DIR stops GDAL listing a (large, content-addressed) directory when no sidecar is expected.
ENV_NO_SIDECARS: dict[str, Any] = {"GDAL_PAM_ENABLED": "NO", "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
ENV_WITH_SIDECARS: dict[str, Any] = {"GDAL_PAM_ENABLED": "NO"}


def _unreadable(name: str, exc: BaseException) -> IntakeRefused:
    logger.info("raster %s unreadable: %s", name, exc)
    return IntakeRefused(
        name, f"« {name} » est une image illisible par GDAL (fichier tronqué ?) : {exc}", "unreadable"
    )


def describe_raster(path: Path, name: str, *, sidecars: bool = False) -> FileDescription:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rasterio.windows import Window

    notes: list[str] = []
    try:
        with warnings.catch_warnings(), rasterio.Env(**(ENV_WITH_SIDECARS if sidecars else ENV_NO_SIDECARS)):
            # NotGeoreferencedWarning is expected for scans; it is reported below, in French.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                details: dict[str, Any] = {
                    "driver": src.driver,
                    "width": src.width,
                    "height": src.height,
                    "bands": src.count,
                    "dtypes": list(dict.fromkeys(src.dtypes)),
                    "nodata": src.nodata,
                    "overviews": list(src.overviews(1)) if src.count else [],
                    "block_shape": list(src.block_shapes[0]) if src.count else None,
                    "compression": src.compression.value if src.compression else None,
                    "interleave": src.interleaving.value if src.interleaving else None,
                    "resolution": [abs(src.res[0]), abs(src.res[1])],
                    "transform": list(src.transform)[:6],
                }
                crs_value = src.crs.to_wkt() if src.crs else None
                georeferenced = not src.transform.is_identity or bool(src.gcps[0])
                bounds = list(src.bounds)
                if src.count:
                    block_h, block_w = src.block_shapes[0]
                    last = Window(
                        ((src.width - 1) // block_w) * block_w,
                        ((src.height - 1) // block_h) * block_h,
                        min(block_w, src.width - ((src.width - 1) // block_w) * block_w),
                        min(block_h, src.height - ((src.height - 1) // block_h) * block_h),
                    )
                    src.read(1, window=Window(0, 0, min(block_w, src.width), min(block_h, src.height)))
                    src.read(1, window=last)
    except RasterioError as exc:
        raise _unreadable(name, exc) from exc

    code = crs_code(crs_value) if crs_value else None
    extent = wgs84_extent(bounds, crs_value) if crs_value and georeferenced else None
    details["crs_wkt"] = None if code else crs_value
    details["extent"] = bounds if georeferenced else None
    details["georeferenced"] = georeferenced
    if not georeferenced:
        notes.append(f"« {name} » n'est pas géoréférencé (ni balises GeoTIFF, ni fichier de calage .tfw).")
    elif crs_value is None:
        notes.append(f"« {name} » n'a pas de système de coordonnées.")
    elif code is None:
        notes.append(f"La projection de « {name} » n'a pas de code EPSG reconnu.")
    else:
        notes.extend(extent_warnings(bounds, crs_value, extent))

    fmt = "jp2" if details["driver"] == "JP2OpenJPEG" else "tif"
    media = FORMATS[fmt].media_type
    if details["driver"] == "GTiff":
        is_cog, errors, cog_warnings = _cog_validate(path)
        details["cog"] = {"is_cog": is_cog, "errors": errors, "warnings": cog_warnings}
        if is_cog:
            fmt, media = "cog", FORMATS["cog"].media_type
        if not georeferenced:
            media = "image/tiff"
    elif details["driver"] not in ("JP2OpenJPEG", "JPEG2000", "JP2KAK", "JP2ECW", "JP2MrSID"):
        logger.info("raster %s opened by unexpected driver %s", name, details["driver"])
    return FileDescription(
        format=fmt,
        kind="raster",
        media_type=media,
        crs=code,
        extent_wgs84=extent,
        details=details,
        warnings=notes,
    )


def _cog_validate(path: Path) -> tuple[bool, list[str], list[str]]:
    from rasterio.errors import NotGeoreferencedWarning, RasterioError
    from rio_cogeo.cogeo import cog_validate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            is_cog, errors, cog_warnings = cog_validate(str(path), quiet=True)
    except (RasterioError, ValueError, KeyError) as exc:  # cog_validate reads IFDs itself
        logger.info("cog_validate failed on %s: %s", path, exc)
        return False, [str(exc)], []
    return bool(is_cog), [str(e) for e in errors], [str(w) for w in cog_warnings]
