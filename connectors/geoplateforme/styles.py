"""Default GeoServer styles for WMS-VECTOR layers: SLD **1.0.0**, the only version the platform takes
(geoplateforme-api.md §2.3; QGIS's 1.1.0 exports have to be downgraded). They use no attribute, so the
platform's ``used_attributes`` check (§2.3) always passes.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

STROKE = "#1f5fa8"
FILL = "#4f8fd6"

_SYMBOLIZERS = {
    "point": f"""<PointSymbolizer><Graphic><Mark><WellKnownName>circle</WellKnownName>
<Fill><CssParameter name="fill">{FILL}</CssParameter></Fill>
<Stroke><CssParameter name="stroke">{STROKE}</CssParameter>
<CssParameter name="stroke-width">1</CssParameter></Stroke>
</Mark><Size>8</Size></Graphic></PointSymbolizer>""",
    "line": f"""<LineSymbolizer><Stroke><CssParameter name="stroke">{STROKE}</CssParameter>
<CssParameter name="stroke-width">2</CssParameter></Stroke></LineSymbolizer>""",
    "polygon": f"""<PolygonSymbolizer><Fill><CssParameter name="fill">{FILL}</CssParameter>
<CssParameter name="fill-opacity">0.5</CssParameter></Fill>
<Stroke><CssParameter name="stroke">{STROKE}</CssParameter>
<CssParameter name="stroke-width">1</CssParameter></Stroke>
</PolygonSymbolizer>""",
}


def geometry_family(geometry_type: str | None) -> str:
    """``point``, ``line`` or ``polygon`` from an OGR or PostGIS geometry type (lines when unknown)."""
    kind = (geometry_type or "").upper()
    if "POINT" in kind:
        return "point"
    if "POLYGON" in kind or "SURFACE" in kind:
        return "polygon"
    return "line"


def default_sld(family: str, title: str) -> bytes:
    """A one-rule SLD 1.0.0 for a geometry family."""
    symbolizer = _SYMBOLIZERS.get(family, _SYMBOLIZERS["line"])
    name = f"openig-{family}"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor version="1.0.0" xmlns="http://www.opengis.net/sld" xmlns:ogc="http://www.opengis.net/ogc"
  xmlns:xlink="http://www.w3.org/1999/xlink" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.opengis.net/sld http://schemas.opengis.net/sld/1.0.0/StyledLayerDescriptor.xsd">
<NamedLayer><Name>{name}</Name><UserStyle><Name>{name}</Name><Title>{escape(title)}</Title>
<FeatureTypeStyle><Rule><Name>{family}</Name>{symbolizer}</Rule></FeatureTypeStyle>
</UserStyle></NamedLayer></StyledLayerDescriptor>
""".encode()
