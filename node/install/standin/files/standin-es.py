#!/usr/bin/env python3
# Stand-in, not the real Elasticsearch: it listens on the configured HTTP and
# transport ports and answers / and /_nodes/... with JSON, so that tests can
# check how esnode configured a node. -Xms/-Xmx arrive as arguments, so they
# show in the process's command line as a real JVM's would.
import http.server
import ipaddress
import json
import os
import socket
import sys
import threading

VERSION = "@VERSION@"
CONF = os.environ.get("ES_PATH_CONF", "/etc/elasticsearch")


def load_yml(path):
    out = {}
    try:
        with open(path) as fh:
            for raw in fh:
                line = raw.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#") or line[0] in " \t-":
                    continue
                if ":" not in line:
                    continue
                key, value = line.split(":", 1)
                value = value.strip()
                if value.startswith("[") and value.endswith("]"):
                    value = [v.strip().strip("\"'") for v in value[1:-1].split(",") if v.strip()]
                else:
                    value = value.strip("\"'")
                out[key.strip()] = value
    except FileNotFoundError:
        pass
    return out


def nest(flat):
    out = {}
    for key, value in flat.items():
        cur = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                break
            cur = nxt
        else:
            cur[parts[-1]] = value
    return out


def to_bytes(size):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    s = size.lower()
    if s and s[-1] in units:
        return int(s[:-1]) * units[s[-1]]
    return int(s)


def bind_host(value):
    if isinstance(value, list):
        value = value[0] if value else ""
    if not value:
        return "127.0.0.1"
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        return "0.0.0.0"


settings = load_yml(os.path.join(CONF, "elasticsearch.yml"))
jvm_args = [a for a in sys.argv[1:] if a.startswith("-X")]
heap = {"init": 0, "max": 0}
for a in jvm_args:
    if a.startswith("-Xms"):
        heap["init"] = to_bytes(a[4:])
    elif a.startswith("-Xmx"):
        heap["max"] = to_bytes(a[4:])
host = bind_host(settings.get("network.host", ""))
http_port = int(settings.get("http.port", 9200))
transport_port = int(settings.get("transport.port", settings.get("transport.tcp.port", 9300)))
name = settings.get("node.name", socket.gethostname())
cluster = settings.get("cluster.name", "elasticsearch")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/":
            body = {"name": name, "cluster_name": cluster, "version": {"number": VERSION},
                    "tagline": "stand-in, not the real Elasticsearch"}
        elif path.startswith("/_nodes"):
            body = {"cluster_name": cluster, "nodes": {"standin-node": {
                "name": name, "version": VERSION, "settings": nest(settings),
                "jvm": {"input_arguments": jvm_args,
                        "mem": {"heap_init_in_bytes": heap["init"], "heap_max_in_bytes": heap["max"]}}}}}
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def transport():
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, transport_port))
    s.listen(16)
    while True:
        conn, _ = s.accept()
        conn.close()


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in host else socket.AF_INET


threading.Thread(target=transport, daemon=True).start()
print("stand-in Elasticsearch %s listening on %s:%d (transport %d), heap %s" % (VERSION, host, http_port, transport_port, " ".join(jvm_args)), flush=True)
Server((host, http_port), Handler).serve_forever()
