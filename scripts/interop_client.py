"""Interop checks of `stacdb serve` with the Python STAC tools; run by scripts/interop.sh.

    interop_client.py validate SCHEMA_DIR TOOL ARGS...
        Runs the shared offline stac-api-validator wrapper TOOL (../shared/tools/
        stac_api_validator_offline.py) with ARGS, answering two more kinds of schema URL
        without the network:
        - the STAC v1.0.0 core schemas, from SCHEMA_DIR (copies taken from the pystac 1.10.1
          wheel; the pystac that stac-api-validator needs bundles only v1.1.0, and the
          test data is STAC 1.0.0);
        - extension schemas (https://stac-extensions.github.io/...), answered with an empty
          (accept-all) schema, since no package ships them: extension fields are NOT
          checked offline. Each one so answered is listed on standard error.

    interop_client.py compare URL STACDB CATALOG
        Searches the served API with pystac-client (GET and POST, small pages so that
        paging is exercised) and compares the item ids with those of `STACDB search CATALOG
        --format ndjson` with the same parameters: the same order when the search sorts,
        the same set otherwise, and never an id twice. Also compares the collection ids of
        `Client.get_collections()` with `stacdb info --json`. Exits 1 on any mismatch.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- validate

V100 = "https://schemas.stacspec.org/v1.0.0"
V100_FILES = {
    f"{V100}/item-spec/json-schema/item.json": "item.json",
    f"{V100}/catalog-spec/json-schema/catalog.json": "catalog.json",
    f"{V100}/collection-spec/json-schema/collection.json": "collection.json",
    **{
        f"{V100}/item-spec/json-schema/{name}.json": f"{name}.json"
        for name in ("basics", "datetime", "instrument", "licensing", "provider")
    },
}
EXTENSIONS = "https://stac-extensions.github.io/"


def validate(schema_dir: str, tool: str, args: list[str]) -> None:
    import requests

    bundled = {
        url: json.loads((Path(schema_dir) / name).read_text()) for url, name in V100_FILES.items()
    }
    stubbed: set[str] = set()
    original = requests.Session.request

    def answer(self: Any, method: str, url: Any, *rest: Any, **kwargs: Any) -> Any:
        url_text = str(url)
        schema = None
        if method.upper() == "GET":
            if url_text in bundled:
                schema = bundled[url_text]
            elif url_text.startswith(EXTENSIONS) and url_text.endswith(".json"):
                if url_text not in stubbed:
                    stubbed.add(url_text)
                    print(f"interop: offline, not checked: {url_text}", file=sys.stderr)
                schema = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": url_text}
        if schema is None:
            return original(self, method, url, *rest, **kwargs)
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(schema).encode()
        response.url = url_text
        response.headers["Content-Type"] = "application/json"
        response.encoding = "utf-8"
        return response

    requests.Session.request = answer

    # pystac's own validation (run by the validator when all else passed) reads schemas
    # through its StacIO (urllib3), not requests.
    import pystac.stac_io

    read = pystac.stac_io.DefaultStacIO.read_text_from_href

    def read_schema(self: Any, href: str) -> str:
        response = answer(None, "GET", href) if _offline(href) else None
        if response is not None:
            return response.text
        return read(self, href)

    def _offline(href: str) -> bool:
        return href in bundled or (href.startswith(EXTENSIONS) and href.endswith(".json"))

    pystac.stac_io.DefaultStacIO.read_text_from_href = read_schema
    sys.argv = [tool, *args]
    # The shared tool wraps requests.Session.request again (for the v1.1.0 schemas) and
    # calls the validator's main, which exits.
    runpy.run_path(tool, run_name="__main__")


# ---------------------------------------------------------------------------- compare

# A box near Denver, inside the Sentinel-2 data (83 items).
BOX = [-106.0, 38.0, -105.0, 39.0]
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-106, 38], [-105, 38], [-105, 39], [-106, 39], [-106, 38]]],
}

# name, pystac-client search parameters, the same search as `stacdb search` options,
# whether the order must match. Each runs with GET and with POST.
CASES: list[tuple[str, dict[str, Any], list[str], bool]] = [
    ("bbox", {"bbox": BOX}, ["--bbox", ",".join(map(str, BOX))], False),
    (
        "datetime",
        {"datetime": "2024-08-01T00:00:00Z/2024-08-05T00:00:00Z"},
        ["--datetime", "2024-08-01T00:00:00Z/2024-08-05T00:00:00Z"],
        False,
    ),
    (
        "datetime open end + collections",
        {"datetime": "2024-08-25T00:00:00Z/..", "collections": ["sentinel-2-l2a"]},
        ["--datetime", "2024-08-25T00:00:00Z/..", "--collections", "sentinel-2-l2a"],
        False,
    ),
    (
        "collections joplin + bbox",
        {"collections": ["joplin"], "bbox": [-94.6, 37.0, -94.5, 37.1]},
        ["--collections", "joplin", "--bbox", "-94.6,37.0,-94.5,37.1"],
        False,
    ),
    (
        "intersects",
        {"intersects": POLYGON},
        ["--intersects", json.dumps(POLYGON)],
        False,
    ),
    (
        "cql2-text filter",
        {
            "filter": "\"eo:cloud_cover\" < 5 AND \"s2:mgrs_tile\" IN ('13TEF', '13SDD', '13TDE')",
            "filter_lang": "cql2-text",
        },
        [
            "--filter",
            "\"eo:cloud_cover\" < 5 AND \"s2:mgrs_tile\" IN ('13TEF', '13SDD', '13TDE')",
            "--filter-lang",
            "cql2-text",
        ],
        False,
    ),
    (
        "cql2-json filter",
        {
            "filter": {
                "op": "and",
                "args": [
                    {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]},
                    {"op": "s_intersects", "args": [{"property": "geometry"}, POLYGON]},
                ],
            },
            "filter_lang": "cql2-json",
        },
        [
            "--filter",
            json.dumps(
                {
                    "op": "and",
                    "args": [
                        {"op": "<", "args": [{"property": "eo:cloud_cover"}, 10]},
                        {"op": "s_intersects", "args": [{"property": "geometry"}, POLYGON]},
                    ],
                }
            ),
            "--filter-lang",
            "cql2-json",
        ],
        False,
    ),
    (
        "sortby eo:cloud_cover,id with bbox",
        {"bbox": BOX, "sortby": "+eo:cloud_cover,+id"},
        ["--bbox", ",".join(map(str, BOX)), "--sortby", "+eo:cloud_cover,+id"],
        True,
    ),
    (
        "sortby -datetime with filter",
        {"filter": "\"eo:cloud_cover\" < 2", "filter_lang": "cql2-text", "sortby": "-datetime"},
        ["--filter", "\"eo:cloud_cover\" < 2", "--sortby", "-datetime"],
        True,
    ),
    (
        "sortby -s2:mgrs_tile,datetime,id",
        {"datetime": "2024-08-01T00:00:00Z/2024-08-05T00:00:00Z", "sortby": "-s2:mgrs_tile,datetime,id"},
        [
            "--datetime",
            "2024-08-01T00:00:00Z/2024-08-05T00:00:00Z",
            "--sortby",
            "-s2:mgrs_tile,datetime,id",
        ],
        True,
    ),
    (
        "default order (-datetime,-id)",
        {"bbox": BOX},
        ["--bbox", ",".join(map(str, BOX))],
        True,
    ),
    (
        "fields id,properties.eo:cloud_cover",
        {"bbox": BOX, "fields": ["id", "properties.eo:cloud_cover"]},
        ["--bbox", ",".join(map(str, BOX)), "--fields", "id,properties.eo:cloud_cover"],
        True,
    ),
    (
        "fields exclude assets,links",
        {"bbox": BOX, "fields": ["-assets", "-links"]},
        ["--bbox", ",".join(map(str, BOX)), "--fields", "-assets,-links"],
        True,
    ),
    ("q T13TEF", {"q": "T13TEF"}, ["--q", "T13TEF"], False),
    ("q '\"R141\" AND S2B' + bbox", {"q": '"R141" AND S2B', "bbox": BOX}, ["--q", '"R141" AND S2B', "--bbox", ",".join(map(str, BOX))], False),
    (
        "query eo:cloud_cover lt 3",
        {"query": {"eo:cloud_cover": {"lt": 3}}},
        ["--query", json.dumps({"eo:cloud_cover": {"lt": 3}})],
        False,
    ),
]

LIMIT = 7
# Cases whose documents are compared too, not only their ids.
COMPARE_DOCUMENTS = {"fields id,properties.eo:cloud_cover"}


def cli_items(stacdb: str, catalog: str, options: list[str]) -> list[dict[str, Any]]:
    run = subprocess.run(
        [stacdb, "search", catalog, "--format", "ndjson", *options],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        raise RuntimeError(f"stacdb search {' '.join(options)} failed: {run.stderr.strip()}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def api_items(client: Any, method: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    params = dict(params)
    q = params.pop("q", None)
    search = client.search(method=method, limit=LIMIT, **params)
    if q is not None:
        # pystac-client 0.9 has no `q` argument; the parameter passes through as given.
        search._parameters["q"] = q
    pages = 0
    items: list[dict[str, Any]] = []
    for page in search.pages_as_dicts():
        pages += 1
        items.extend(page.get("features", []))
    return items, pages


def compare(url: str, stacdb: str, catalog: str) -> int:
    from pystac_client import Client

    client = Client.open(url)
    failures: list[str] = []
    checks = 0

    for name, params, options, ordered in CASES:
        try:
            expected = cli_items(stacdb, catalog, options)
        except RuntimeError as e:
            checks += 1
            failures.append(f"{name}: {e}")
            print(f"FAIL {name}: {e}")
            continue
        expected_ids = [item["id"] for item in expected]
        if not expected_ids:
            checks += 1
            failures.append(f"{name}: the CLI found no items; the case tests nothing")
        for method in ("GET", "POST"):
            checks += 1
            label = f"{name} [{method}]"
            try:
                got, pages = api_items(client, method, params)
            except Exception as e:  # noqa: BLE001 - report any client failure as a mismatch
                failures.append(f"{label}: pystac-client failed: {type(e).__name__}: {e}")
                print(f"FAIL {label}: pystac-client failed: {type(e).__name__}: {e}")
                continue
            got_ids = [item.get("id") for item in got]
            problems = []
            if len(set(got_ids)) != len(got_ids):
                twice = sorted({i for i in got_ids if got_ids.count(i) > 1})
                problems.append(f"ids returned more than once across pages: {twice[:5]}")
            if ordered:
                if got_ids != expected_ids:
                    first = next(
                        (i for i, (a, b) in enumerate(zip(got_ids, expected_ids)) if a != b),
                        min(len(got_ids), len(expected_ids)),
                    )
                    problems.append(
                        f"order differs from the CLI at position {first}: "
                        f"api {got_ids[first:first + 3]} vs cli {expected_ids[first:first + 3]} "
                        f"({len(got_ids)} vs {len(expected_ids)} items)"
                    )
            elif set(got_ids) != set(expected_ids):
                missing = sorted(set(expected_ids) - set(got_ids))
                extra = sorted(set(got_ids) - set(expected_ids))
                problems.append(
                    f"id sets differ ({len(got_ids)} api vs {len(expected_ids)} cli): "
                    f"missing {missing[:3]}, extra {extra[:3]}"
                )
            if name in COMPARE_DOCUMENTS and not problems:
                # The API may add fields (such as type or stac_version), but every field
                # the CLI returns must be there with the same value.
                for g, e in zip(got, expected):
                    if any(g.get(key) != value for key, value in e.items()):
                        problems.append(f"documents differ, e.g. api {g} vs cli {e}")
                        break
            expected_pages = -(-len(expected_ids) // LIMIT) if expected_ids else 1
            if not problems and pages < expected_pages:
                problems.append(f"{pages} pages for {len(got_ids)} items at limit {LIMIT}")
            if problems:
                failures.append(f"{label}: " + "; ".join(problems))
                print(f"FAIL {label}: " + "; ".join(problems))
            else:
                print(f"ok   {label}: {len(got_ids)} items in {pages} pages")

    # Collections.
    checks += 1
    info = json.loads(
        subprocess.run([stacdb, "info", catalog, "--json"], capture_output=True, text=True, check=True).stdout
    )
    expected_collections = sorted(c["id"] for c in info["collections"])
    got_collections = sorted(c.id for c in client.get_collections())
    if got_collections != expected_collections:
        failures.append(f"get_collections: api {got_collections} vs info {expected_collections}")
        print(f"FAIL get_collections: api {got_collections} vs info {expected_collections}")
    else:
        print(f"ok   get_collections: {got_collections}")

    print(f"pystac-client: {checks - len(failures)} passed, {len(failures)} failed")
    if failures:
        print("pystac-client mismatches:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    if len(sys.argv) >= 4 and sys.argv[1] == "validate":
        validate(sys.argv[2], sys.argv[3], sys.argv[4:])
        return 0
    if len(sys.argv) == 5 and sys.argv[1] == "compare":
        return compare(sys.argv[2], sys.argv[3], sys.argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
