"""The data sets, and the systems measured on them: stacdb, pgstac (PostgreSQL + PostGIS, loaded
with pypgstac) behind stac-fastapi-pgstac, and `rustac serve`.

Everything listens on 127.0.0.1 only. PostgreSQL runs as a private cluster in
bench/work/pg (port 5439), started by the harness and stopped when it ends."""

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import DATA_ROOT, STACDB, WORK, Service, log, run, venv_bin

PG_PORT = 5439
PG_DIR = WORK / "pg"
STACDB_PORT = 8091
PGSTAC_PORT = 8092
RUSTAC_PORT = 8093


# --- data sets --------------------------------------------------------------------------------


@dataclass
class DataSet:
    name: str
    label: str
    items_gz: Path  # gzip NDJSON of items
    collections_json: Path  # the collections, as the bench data ships them
    collection: str  # the collection every item is in
    derived: bool
    # A set too big for every run of every figure: fewer runs, no warm-up (see main.py).
    big: bool = False

    @property
    def items_ndjson(self) -> Path:
        """The items uncompressed (pypgstac and rustac read plain NDJSON)."""
        return WORK / f"{self.name}.items.ndjson"

    @property
    def collections_ndjson(self) -> Path:
        """The collections, one per line (pypgstac reads them so). Not `<set>.collections.ndjson`:
        that name is derive_million.py's output for the 1M set, the documents without the
        harness's additions."""
        return WORK / f"{self.name}.all-collections.ndjson"

    @property
    def collection_json(self) -> Path:
        """The one collection the items are in, alone (rustac serve takes a file per document)."""
        return WORK / f"{self.name}.collection.json"

    @property
    def catalog(self) -> Path:
        return WORK / f"{self.name}.harness.stacdb"

    @property
    def database(self) -> str:
        return "bench_" + self.name.replace("-", "_")

    def sha256(self) -> str:
        return hashlib.sha256(self.items_gz.read_bytes()).hexdigest()

    def count(self) -> int:
        with open(self.items_ndjson, "rb") as f:
            return sum(1 for line in f if line.strip())

    def raw_bytes(self) -> int:
        return self.items_ndjson.stat().st_size


def data_sets(quick: bool, million: bool = False) -> dict:
    geoparquet = DATA_ROOT / "stac-fastapi-geoparquet"
    naip = DataSet(
        "naip-10k",
        "naip: 10,000 real NAIP items",
        geoparquet / "naip.ndjson.gz",
        geoparquet / "collections.json",
        "naip",
        False,
    )
    sets = {"naip-10k": naip}
    if not quick:
        sets["naip-100k"] = DataSet(
            "naip-100k",
            "derived: 100,000 items from the NAIP set (ids `<id>-d<k>`, dates k years back)",
            WORK / "naip-100k.ndjson.gz",
            geoparquet / "collections.json",
            "naip",
            True,
        )
    if million:
        sets["derived-1m"] = DataSet(
            "derived-1m",
            "derived: 1,000,000 items from every item file of the bench data (naip, openaerialmap,"
            " modis, sentinel-2, landsat, sentinel-1 mosaics; ids `<id>-d<k>`, dates k years back)",
            WORK / "derived-1m.ndjson.gz",
            WORK / "derived-1m.all-collections.json",
            "naip",
            True,
            big=True,
        )
    return sets


def _derive_million(ds: DataSet) -> None:
    """Writes the 1M set with bench/derive_million.py (once; a few minutes), and a collections
    file that pgstac can load it with: the collection documents the bench data has, and a
    plain document for each collection it names but has none for (pypgstac refuses items of an
    unknown collection; stacdb is given the same file, so both stores hold the same)."""
    summary = Path(str(ds.items_gz) + ".json")
    documents = WORK / "derived-1m.collections.ndjson"
    script = WORK.parent / "derive_million.py"
    stale = any(not p.exists() or p.stat().st_mtime < script.stat().st_mtime
                for p in (ds.items_gz, summary, documents))
    if stale:
        log("writing the derived 1,000,000-item set (bench/derive_million.py; a few minutes)")
        tmp = Path(str(summary) + ".tmp")
        with open(tmp, "w") as out:
            run(["python3", str(script), str(ds.items_gz), "--data", str(DATA_ROOT),
                 "--collections", str(documents)], stdout=out)
        tmp.rename(summary)
    collections = [json.loads(line) for line in documents.read_text().splitlines() if line.strip()]
    have = {c["id"] for c in collections}
    for cid in json.loads(summary.read_text()).get("create_collections", []):
        if cid in have:
            continue
        collections.append({
            "type": "Collection", "stac_version": "1.1.0", "id": cid,
            "description": f"{cid}: items of the bench data with no collection document "
                           "(written by bench/run)",
            "license": "other",
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                       "temporal": {"interval": [[None, None]]}},
            "links": [],
        })
    text = json.dumps(collections)
    if not ds.collections_json.exists() or ds.collections_json.read_text() != text:
        ds.collections_json.write_text(text)


def prepare(ds: DataSet) -> None:
    """Writes the derived set (once) and the plain files the peers read."""
    if ds.name == "derived-1m":
        _derive_million(ds)
    if not ds.collections_json.exists():
        raise SystemExit(f"missing {ds.collections_json} (set STACDB_BENCH_ROOT)")
    if ds.derived and not ds.items_gz.exists():
        log(f"writing the derived set {ds.items_gz.name}")
        src = DATA_ROOT / "stac-fastapi-geoparquet" / "naip.ndjson.gz"
        with open(str(ds.items_gz) + ".json", "w") as out:
            run(["python3", str(WORK.parent / "derive_set.py"), str(src), str(ds.items_gz), "--copies", "10"], stdout=out)
    if not ds.items_gz.exists():
        raise SystemExit(f"missing {ds.items_gz} (set STACDB_BENCH_ROOT)")
    if not ds.items_ndjson.exists() or ds.items_ndjson.stat().st_mtime < ds.items_gz.stat().st_mtime:
        tmp = ds.items_ndjson.with_suffix(".tmp")
        with gzip.open(ds.items_gz, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.rename(ds.items_ndjson)
    doc = json.loads(ds.collections_json.read_text())
    collections = doc["collections"] if isinstance(doc, dict) else doc
    with open(ds.collections_ndjson, "w") as f:
        for c in collections:
            f.write(json.dumps(c) + "\n")
    [mine] = [c for c in collections if c["id"] == ds.collection]
    ds.collection_json.write_text(json.dumps(mine))


def ensure_catalog(ds: DataSet) -> None:
    """The stacdb catalog the search and server cases read, built once per data set and
    binary (rebuilt when the binary or the items are newer)."""
    newest = max(STACDB.stat().st_mtime, ds.items_gz.stat().st_mtime)
    if ds.catalog.exists() and ds.catalog.stat().st_mtime > newest:
        return
    for suffix in ("", "-wal", "-shm"):
        Path(str(ds.catalog) + suffix).unlink(missing_ok=True)
    log(f"building {ds.catalog.name}")
    run([str(STACDB), "ingest", str(ds.catalog), str(ds.collections_json), str(ds.items_gz)],
        stdout=subprocess.DEVNULL)


# --- PostgreSQL + pgstac ----------------------------------------------------------------------


def pg_bin(name: str) -> str:
    for version in ("17", "16", "15", "14", "13"):
        p = Path(f"/usr/lib/postgresql/{version}/bin/{name}")
        if p.exists():
            return str(p)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"PostgreSQL's {name} is not installed (bench/run installs it with apt)")
    return found


def pg_env(database: str = "postgres") -> dict:
    env = dict(os.environ)
    env.update(PGHOST="127.0.0.1", PGPORT=str(PG_PORT), PGUSER="postgres", PGPASSWORD="bench",
               PGDATABASE=database)
    return env


def _as_postgres(argv: list) -> list:
    # PostgreSQL refuses to run as root; the cluster belongs to the postgres user.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + argv
    return argv


class Postgres:
    """A private PostgreSQL cluster in bench/work/pg, on 127.0.0.1:5439."""

    def __init__(self):
        self.data = PG_DIR / "data"
        self.started = False

    def start(self) -> "Postgres":
        if not (self.data / "PG_VERSION").exists():
            log("initdb (bench/work/pg)")
            PG_DIR.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(PG_DIR, "postgres")
            run(_as_postgres([pg_bin("initdb"), "-D", str(self.data), "-U", "postgres",
                              "--auth=trust", "-E", "UTF8"]), stdout=subprocess.DEVNULL)
        status = subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "status"]),
                                capture_output=True)
        if status.returncode != 0:
            # The settings of a small tuned server: 1 GB of shared buffers on this 24 GiB
            # machine, fsync on (as stacdb's own commits are), everything on loopback only.
            opts = (f"-p {PG_PORT} -k /tmp -c listen_addresses=127.0.0.1 -c shared_buffers=1GB "
                    "-c work_mem=64MB -c maintenance_work_mem=512MB -c max_wal_size=4GB "
                    "-c effective_cache_size=8GB -c statement_timeout=600000")
            run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(PG_DIR / "log"),
                              "-o", opts, "-w", "-t", "60", "start"]), stdout=subprocess.DEVNULL)
            self.started = True
        return self

    def stop(self) -> None:
        if self.started:
            subprocess.run(_as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast",
                                         "-w", "stop"]), capture_output=True)
            self.started = False

    def psql(self, database: str, sql: str) -> str:
        out = run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                  env=pg_env(database), capture_output=True, text=True)
        return out.stdout.strip()

    def recreate(self, database: str) -> None:
        self.psql("postgres", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        self.psql("postgres", f"CREATE DATABASE {database}")
        run([venv_bin("pypgstac"), "migrate"], env=pg_env(database), stdout=subprocess.DEVNULL)

    def load(self, ds: DataSet, database: str) -> float:
        """pypgstac load of the collections and items into a freshly migrated database;
        returns the seconds the item load took."""
        env = pg_env(database)
        run([venv_bin("pypgstac"), "load", "collections", str(ds.collections_ndjson),
             "--method", "upsert"], env=env, stdout=subprocess.DEVNULL)
        t0 = time.perf_counter()
        run([venv_bin("pypgstac"), "load", "items", str(ds.items_ndjson), "--method", "insert"],
            env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def ensure_loaded(self, ds: DataSet) -> None:
        """The database the search and server cases read: loaded once per data set, marked
        with the SHA-256 of the items it holds."""
        sha = ds.sha256()
        try:
            stamp = self.psql(ds.database, "SELECT sha FROM public.bench_stamp")
        except subprocess.CalledProcessError:
            stamp = ""
        if stamp == sha:
            return
        log(f"loading {ds.name} into pgstac (database {ds.database})")
        self.recreate(ds.database)
        self.load(ds, ds.database)
        self.psql(ds.database, "VACUUM ANALYZE")
        self.psql(ds.database, f"CREATE TABLE public.bench_stamp AS SELECT '{sha}'::text AS sha")

    def table_bytes(self, database: str) -> int:
        """Bytes pgstac uses for its items: every items partition with its indexes and TOAST."""
        return int(self.psql(database, """
            SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'pgstac' AND c.relkind = 'r'
              AND (c.relname = 'items' OR c.relname LIKE '\\_items\\_%')"""))

    def count(self, database: str, search: dict) -> int:
        body = dict(search)
        body["limit"] = 1
        body["conf"] = {"context": "on"}
        sql = ("SET search_path TO pgstac, public; "
               f"SELECT search($${json.dumps(body)}$$::jsonb)->'numberMatched'")
        return int(self.psql(database, sql).splitlines()[-1])


# --- the servers ------------------------------------------------------------------------------


def stacdb_server(ds: DataSet) -> Service:
    return Service(
        "stacdb-serve",
        [str(STACDB), "serve", str(ds.catalog), "--host", "127.0.0.1", "--port", str(STACDB_PORT)],
        f"http://127.0.0.1:{STACDB_PORT}",
    )


def pgstac_server(ds: DataSet) -> Service:
    env = pg_env(ds.database)
    # stac-fastapi-pgstac's settings: the connection, a pool as large as the default, and
    # quiet logs. One uvicorn worker, as the issue's reference figures were measured.
    env.update(PGDATABASE=ds.database, STAC_FASTAPI_TITLE="bench", STAC_FASTAPI_DESCRIPTION="bench",
               STAC_FASTAPI_LANDING_ID="bench", STAC_FASTAPI_VERSION="7.2.0")
    return Service(
        "stac-fastapi-pgstac",
        [venv_bin("uvicorn"), "stac_fastapi.pgstac.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(PGSTAC_PORT), "--workers", "1", "--log-level", "warning",
         "--no-access-log"],
        f"http://127.0.0.1:{PGSTAC_PORT}",
        env=env,
    )


def rustac_server(ds: DataSet) -> Service:
    return Service(
        "rustac-serve",
        [venv_bin("rustac"), "serve", str(ds.collection_json), str(ds.items_ndjson), "--addr",
         f"127.0.0.1:{RUSTAC_PORT}"],
        f"http://127.0.0.1:{RUSTAC_PORT}",
    )
