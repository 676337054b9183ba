"""``GET /docs``: the OpenAPI document as one self-contained HTML page (no external resource:
the server has no internet to fetch a viewer from).

    page = docs_page(openapi_document(dataplane, max_request_bytes=...))
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from keel.serving._openapi_common import JSON_MEDIA_TYPE as _JSON
from keel.serving._openapi_common import REF_PREFIX as _REF

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h2{border-top:1px solid #ddd;padding-top:1em}code,pre{font:13px ui-monospace,monospace}
pre{background:#f6f8fa;padding:.8em;overflow:auto;border-radius:4px}td,th{vertical-align:top;
text-align:left;padding:.3em .6em}table{border-collapse:collapse}.m{display:inline-block;
min-width:4em;border-radius:3px;color:#fff;background:#2b6cb0;text-align:center}.post{background:#2f855a}
"""


def docs_page(document: Mapping[str, Any]) -> str:
    """``document`` as one HTML page with no external resource: operations, then schemas."""
    info = document["info"]
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    out = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_h(info['title'])}",
        f"</title><style>{_STYLE}</style></head><body><h1>{_h(info['title'])} ",
        f"<small>{_h(info['version'])}</small></h1><p>{_h(info['description'])}</p><ul>",
    ]
    out += [
        f"<li><a href='#{_h(op['operationId'])}'><code>{method.upper()} {_h(path)}</code></a> "
        f"{_h(op['summary'])}</li>"
        for path, method, op in operations
    ]
    out.append("</ul>")
    for path, method, op in operations:
        out.append(
            f"<h2 id='{_h(op['operationId'])}'><span class='m {method}'>{method.upper()}</span> "
            f"<code>{_h(path)}</code></h2><p>{_h(op['summary'])}</p>"
        )
        if "requestBody" in op:
            out.append(f"<h3>Request body</h3>{_body(op['requestBody']['content'][_JSON])}")
        out.append("<h3>Responses</h3><table><tr><th>status</th><th>when</th><th>body</th></tr>")
        for status, answer in op["responses"].items():
            [(media, content)] = answer["content"].items()
            out.append(
                f"<tr><td>{_h(status)}</td><td>{_h(answer['description'])}</td>"
                f"<td><code>{_h(media)}</code> {_body(content)}</td></tr>"
            )
        out.append("</table>")
    out.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        out.append(f"<h3 id='schema-{_h(name)}'>{_h(name)}</h3>{_pre(schema)}")
    out.append("</body></html>")
    return "\n".join(out)


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _body(content: Mapping[str, Any]) -> str:
    """A media type's schema: a link for a named one, the codes for an error, else JSON."""
    schema = content["schema"]
    if set(schema) == {"$ref"}:
        name = schema["$ref"].removeprefix(_REF)
        return f"<a href='#schema-{_h(name)}'>{_h(name)}</a>"
    if set(schema) == {"allOf"} and schema["allOf"][0] == {"$ref": f"{_REF}Problem"}:
        codes = ", ".join(
            f"<code>{_h(c)}</code>" for c in schema["allOf"][1]["properties"]["code"]["enum"]
        )
        return f"<a href='#schema-Problem'>Problem</a> with code {codes}"
    return _pre(schema)


def _pre(schema: Any) -> str:
    """Indented JSON whose ``$ref`` targets link to the schema's section."""
    parts = _h(json.dumps(schema, indent=2, ensure_ascii=False)).split(f"&quot;{_REF}")
    for index in range(1, len(parts)):
        name, rest = parts[index].split("&quot;", 1)
        parts[index] = f"&quot;<a href='#schema-{name}'>{_REF}{name}</a>&quot;{rest}"
    return f"<pre>{''.join(parts)}</pre>"
