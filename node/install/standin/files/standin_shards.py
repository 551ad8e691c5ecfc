# Stand-in, not the real Elasticsearch: the shard model of the stand-in
# (lib/standin-es.py). Indices hold primaries and replicas; the elected master
# allocates them across the data nodes, moves them off nodes that may no longer
# hold them, and loses a shard for good when the node holding its only copy
# leaves. Each rule is Elastic's, with the class it comes from:
#  - MetadataCreateIndexService.validateIndexName: index names; defaults
#    index.number_of_shards 5 (6.x) / 1 (7+), index.number_of_replicas 1.
#  - SameShardAllocationDecider: never two copies of a shard on one node.
#  - FilterAllocationDecider + DiscoveryNodeFilters: cluster.routing.allocation
#    .require/.include/.exclude with _name, _ip (_host_ip, _publish_ip), _host,
#    _id or a node attribute; comma-separated values with * wildcards
#    (Regex.simpleMatch). canRemain is NO on an excluded node: its shards move.
#  - AwarenessAllocationDecider.underCapacity: a node without the awareness
#    attribute holds no copy; at most ceil(copies / values) copies per value,
#    counting started and initializing copies and relocation targets, not
#    relocation sources; values are those of the nodes in the cluster plus
#    cluster.routing.allocation.awareness.force.<attr>.values.
#  - ReplicaAfterPrimaryActiveAllocationDecider: replicas only once the
#    primary is active. EnableAllocationDecider: cluster.routing.allocation
#    .enable all/primaries/new_primaries/none. ThrottlingAllocationDecider:
#    node_concurrent_recoveries (default 2) incoming and outgoing recoveries
#    per node (a new index's empty primaries are not throttled).
#  - BalancedShardsAllocator: a shard goes to the permitted node of least
#    weight, 0.45 x its shards + 0.55 x its shards of that index
#    (cluster.routing.allocation.balance.shard / .index defaults); a shard
#    that cannot remain moves to the least-weight node that accepts it.
#  - In-sync copies (IndexMetadata.inSyncAllocationIds, IndexMetadataUpdater,
#    PrimaryShardAllocator): a started copy is in sync; when a node leaves
#    (AllocationService.disassociateDeadNodes, reason NODE_LEFT) its copies
#    fail, an active replica is promoted to primary (RoutingNodes.failShard)
#    and failed copies leave the in-sync set only while a primary is active.
#    A primary with no active copy left is allocated again only to a node that
#    holds an in-sync copy (the same node id, i.e. the same data path): when
#    that node is gone for good, so is the shard (red, no_valid_shard_copy).
#  - ClusterShardHealth / ClusterIndexHealth / ClusterStateHealth: a shard is
#    green with every copy active, yellow with its primary active, red
#    without; a new index's primary that is not active yet is yellow.
# The model is plain JSON (metadata + routing) so it travels in the cluster
# state to every node and a newly elected master takes it over; master-
# eligible nodes also keep the metadata on disk (index definitions, in-sync
# sets, persistent settings, voting exclusions), as GatewayMetaState does, so
# after a full restart the routing is rebuilt from it (CLUSTER_RECOVERED).
#  - Rebalancing (BalancedShardsAllocator.balance), reduced: with every shard
#    active, one copy per round moves from the heaviest to the lightest node
#    while their weights differ by more than the threshold (1.0).
# Not modelled: documents, disk watermarks, delayed allocation after a node
# leaves (index.unassigned.node_left.delayed_timeout), index-level allocation
# settings, allocation retries and failed-allocation counts.
import re

UNASSIGNED, INITIALIZING, STARTED, RELOCATING = "UNASSIGNED", "INITIALIZING", "STARTED", "RELOCATING"
FILTER_PREFIXES = ("cluster.routing.allocation.require.", "cluster.routing.allocation.include.", "cluster.routing.allocation.exclude.")


class ESError(Exception):
    """An error answered the way Elasticsearch answers it."""

    def __init__(self, status, etype, reason, **extra):
        super().__init__(reason)
        self.status, self.etype, self.reason, self.extra = status, etype, reason, extra

    def body(self):
        cause = dict({"type": self.etype, "reason": self.reason}, **self.extra)
        return {"error": dict(cause, root_cause=[cause]), "status": self.status}


def new_metadata():
    return {"indices": {}, "persistent": {}, "transient": {}, "voting_exclusions": []}


def simple_match(pattern, value):
    # Regex.simpleMatch: '*' matches any run of characters, nothing else is special.
    return value is not None and re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


def is_data(node):
    return any(r == "data" or r.startswith("data_") for r in node["roles"])


def parse_bool_param(v, default):
    if v is None:
        return default
    if v in ("", "true"):
        return True
    if v == "false":
        return False
    raise ESError(400, "illegal_argument_exception", "Failed to parse value [%s] as only [true] or [false] are allowed." % v)


class Model:
    """The master's shard model over a metadata and a routing list.

    node_settings are the master's own elasticsearch.yml settings: the
    fallback for cluster settings no API call set (persistent and transient
    win, transient first). now is the clock (seconds); recovery_seconds is how
    long a recovery (a new replica, a relocation) takes here."""

    def __init__(self, metadata, routing, major, node_settings=None, recovery_seconds=1.0):
        self.meta = metadata if metadata is not None else new_metadata()
        self.routing = routing if routing is not None else []
        self.major = major
        self.node_settings = node_settings or {}
        self.recovery_seconds = recovery_seconds

    # --- settings ------------------------------------------------------------
    def setting(self, key, default=None):
        for src in (self.meta["transient"], self.meta["persistent"], self.node_settings):
            if key in src:
                return src[key]
        return default

    def filters(self, kind):
        pre = "cluster.routing.allocation.%s." % kind
        out = {}
        for src in (self.node_settings, self.meta["persistent"], self.meta["transient"]):
            for k, v in src.items():
                if k.startswith(pre):
                    out[k[len(pre):]] = v
        return {k: [x.strip() for x in str(v).split(",") if x.strip()] for k, v in out.items() if str(v).strip()}

    def awareness(self):
        v = self.setting("cluster.routing.allocation.awareness.attributes", "")
        return [a.strip() for a in (v if isinstance(v, list) else str(v).split(",")) if a.strip()]

    # --- deciders --------------------------------------------------------------
    @staticmethod
    def node_matches(node, key, values):
        # DiscoveryNodeFilters.match
        for v in values:
            if key in ("_ip", "_host_ip", "_publish_ip"):
                hit = simple_match(v, node["ip"])
            elif key == "_host":
                hit = simple_match(v, node["ip"]) or simple_match(v, node.get("host", node["ip"]))
            elif key == "_name":
                hit = simple_match(v, node["name"])
            elif key == "_id":
                hit = simple_match(v, node["id"])
            else:
                hit = simple_match(v, node["attributes"].get(key))
            if hit:
                return True
        return False

    def filter_decision(self, node):
        # FilterAllocationDecider.shouldClusterFilter: require (AND), include (OR), exclude (OR).
        req = self.filters("require")
        for k, vs in req.items():
            if not self.node_matches(node, k, vs):
                return "node does not match cluster setting [cluster.routing.allocation.require] filters [%s]" % self.fmt_filters(req)
        inc = self.filters("include")
        if inc and not any(self.node_matches(node, k, vs) for k, vs in inc.items()):
            return "node does not cluster setting [cluster.routing.allocation.include] filters [%s]" % self.fmt_filters(inc)
        exc = self.filters("exclude")
        if any(self.node_matches(node, k, vs) for k, vs in exc.items()):
            return "node matches cluster setting [cluster.routing.allocation.exclude] filters [%s]" % self.fmt_filters(exc)
        return None

    @staticmethod
    def fmt_filters(f):
        return ",".join('%s:"%s"' % (k, ",".join(vs)) for k, vs in sorted(f.items()))

    def holders(self, index, shard, moving=None):
        """Nodes that hold or will hold a copy: started and initializing copies
        and relocation targets, never the source of a relocation (awareness
        counting); same-shard counts both ends. moving is left out."""
        out = []
        for r in self.copies(index, shard):
            if r is moving:
                continue
            if r["state"] == RELOCATING:
                out.append(r["relocating_node"])
            elif r["state"] in (STARTED, INITIALIZING):
                out.append(r["node"])
        return out

    def awareness_decision(self, row, node, nodes, remain=False):
        attrs = self.awareness()
        if not attrs:
            return None
        idx = self.meta["indices"][row["index"]]
        copies = idx["number_of_replicas"] + 1
        for a in attrs:
            if a not in node["attributes"]:
                return ("node does not contain the awareness attribute [%s]; required attributes cluster setting "
                        "[cluster.routing.allocation.awareness.attributes=%s]") % (a, ",".join(attrs))
            values = {n["attributes"][a] for n in nodes.values() if is_data(n) and a in n["attributes"]}
            forced = self.setting("cluster.routing.allocation.awareness.force.%s.values" % a)
            if forced:
                values |= {v.strip() for v in (forced if isinstance(forced, list) else str(forced).split(",")) if v.strip()}
            target = node["attributes"][a]
            count = sum(1 for nid in self.holders(row["index"], row["shard"], moving=None if remain else row)
                        if nid in nodes and nodes[nid]["attributes"].get(a) == target)
            if not remain:
                count += 1
            most = -(-copies // len(values))
            if count > most:
                return ("there are [%d] copies of this shard and [%d] values for attribute [%s] (%s from nodes in the cluster and %s) so there "
                        "may be at most [%d] copies of this shard allocated to nodes with each value, but (including this copy) there "
                        "would be [%d] copies allocated to nodes with [node.attr.%s: %s]") % (
                    copies, len(values), a, "[" + ", ".join(sorted(values)) + "]",
                    "no forced awareness" if not forced else "[%s] from forced awareness" % forced, most, count, a, target)
        return None

    def recoveries(self, nid):
        incoming = outgoing = 0
        for r in self.routing:
            if r["state"] == RELOCATING:
                outgoing += r["node"] == nid
                incoming += r["relocating_node"] == nid
            elif r["state"] == INITIALIZING and not (r["primary"] and r.get("recovery") == "empty"):
                incoming += r["node"] == nid
                if r.get("source"):
                    outgoing += r["source"] == nid
        return incoming, outgoing

    def can_allocate(self, row, node, nodes, new_index=False):
        """None (YES) or the first NO's explanation, deciders in Elastic's order."""
        if not is_data(node):
            return "node does not hold the data role"
        enable = self.setting("cluster.routing.allocation.enable", "all")
        if enable == "none" or (enable == "primaries" and not row["primary"]) or (enable == "new_primaries" and not (row["primary"] and new_index)):
            return "no allocations are allowed due to cluster setting [cluster.routing.allocation.enable=%s]" % enable
        if not row["primary"] and row["state"] == UNASSIGNED and self.active_primary(row["index"], row["shard"]) is None:
            return "primary shard for this replica is not yet active"
        if node["id"] in [r["node"] for r in self.copies(row["index"], row["shard"]) if r is not row and r["node"]] + \
                [r["relocating_node"] for r in self.copies(row["index"], row["shard"]) if r["state"] == RELOCATING]:
            return "a copy of this shard is already allocated to this node"
        why = self.filter_decision(node) or self.awareness_decision(row, node, nodes)
        if why:
            return why
        if not row["primary"] or row["state"] != UNASSIGNED:
            limit = int(self.setting("cluster.routing.allocation.node_concurrent_recoveries", 2))
            if self.recoveries(node["id"])[0] >= limit:
                return "reached the limit of incoming shard recoveries [%d], cluster setting [cluster.routing.allocation.node_concurrent_incoming_recoveries=%d]" % (limit, limit)
        return None

    def can_remain(self, row, nodes):
        node = nodes[row["node"]]
        return self.filter_decision(node) or self.awareness_decision(row, node, nodes, remain=True)

    # --- routing helpers ---------------------------------------------------------
    def copies(self, index, shard):
        return [r for r in self.routing if r["index"] == index and r["shard"] == shard]

    def active_primary(self, index, shard):
        for r in self.copies(index, shard):
            if r["primary"] and r["state"] in (STARTED, RELOCATING):
                return r
        return None

    def in_sync(self, index, shard):
        return self.meta["indices"][index]["in_sync"].setdefault(str(shard), [])

    def weight(self, nid, index):
        total = sum(1 for r in self.routing if nid in (r["node"] if r["state"] != RELOCATING else None, r["relocating_node"]))
        of_index = sum(1 for r in self.routing if r["index"] == index and nid in (r["node"] if r["state"] != RELOCATING else None, r["relocating_node"]))
        return 0.45 * total + 0.55 * of_index

    def best_node(self, row, nodes, candidates, new_index=False):
        ok = [n for n in candidates if self.can_allocate(row, n, nodes, new_index) is None]
        return min(ok, key=lambda n: (self.weight(n["id"], row["index"]), n["id"])) if ok else None

    # --- API operations (on the master) ---------------------------------------------
    def create_index(self, name, body, uuid, now):
        validate_index_name(name)
        if name in self.meta["indices"]:
            raise ESError(400, "resource_already_exists_exception", "index [%s/%s] already exists" % (name, self.meta["indices"][name]["uuid"]),
                          index_uuid=self.meta["indices"][name]["uuid"], index=name)
        settings = flatten((body or {}).get("settings") or {})
        settings = {(k if k.startswith("index.") else "index." + k): v for k, v in settings.items()}
        shards = int_setting(settings, "index.number_of_shards", 5 if self.major < 7 else 1, 1, 1024)
        replicas = int_setting(settings, "index.number_of_replicas", 1, 0, None)
        self.meta["indices"][name] = {"uuid": uuid, "number_of_shards": shards, "number_of_replicas": replicas,
                                      "in_sync": {str(i): [] for i in range(shards)}, "creation_date": int(now * 1000)}
        for i in range(shards):
            for p in [True] + [False] * replicas:
                self.routing.append(unassigned_row(name, i, p, "INDEX_CREATED", now))
        return {"acknowledged": True, "shards_acknowledged": False, "index": name}

    def update_settings(self, body, validate):
        """PUT _cluster/settings: null removes a setting; validate(key) says
        why a key is refused (None when registered)."""
        if not isinstance(body, dict) or not any(k in body for k in ("persistent", "transient")):
            raise ESError(400, "action_request_validation_exception", "Validation Failed: 1: no settings to update;")
        out = {}
        for scope in ("persistent", "transient"):
            upd = flatten(body.get(scope) or {})
            for k, v in upd.items():
                if validate(k):
                    raise ESError(400, "illegal_argument_exception", "%s setting [%s], not recognized" % (scope, k))
                if k.endswith("._ip") and k.startswith(FILTER_PREFIXES) and v is not None:
                    for ip in str(v).split(","):
                        ip = ip.strip()
                        if ip and "*" not in ip and not re.fullmatch(r"[0-9a-fA-F:.]+", ip):
                            raise ESError(400, "illegal_argument_exception", "invalid IP address [%s] for [_ip]" % ip)
            cur = self.meta[scope]
            for k, v in upd.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = v if isinstance(v, (str, list)) else json_scalar(v)
            out[scope] = {k: v for k, v in upd.items() if v is not None}
        return {"acknowledged": True, "persistent": out["persistent"], "transient": out["transient"]}

    def get_settings(self):
        return {"persistent": dict(self.meta["persistent"]), "transient": dict(self.meta["transient"])}

    # --- the allocation round -------------------------------------------------------
    def reroute(self, nodes, now):
        """One AllocationService round over the live nodes {id: node}; returns
        whether anything changed."""
        before = repr((self.routing, self.meta["indices"]))
        self.fail_departed(nodes, now)
        self.finish_recoveries(nodes, now)
        self.allocate_unassigned(nodes, now)
        self.move_shards(nodes, now)
        self.rebalance(nodes, now)
        return repr((self.routing, self.meta["indices"])) != before

    def fail_departed(self, nodes, now):
        for r in self.routing:
            if r["state"] == RELOCATING and r["relocating_node"] not in nodes and r["node"] in nodes:
                r["state"], r["relocating_node"] = STARTED, None  # the target left: relocation cancelled
        for r in self.routing:
            if r["node"] is not None and r["node"] not in nodes:
                self.fail(r, nodes, now, "NODE_LEFT", "node_left [%s]" % r["node"])
        for r in self.routing:
            # A peer recovery whose source (the primary) left fails too.
            if r["state"] == INITIALIZING and r.get("source") and r["source"] not in nodes:
                self.fail(r, nodes, now, "NODE_LEFT", "recovery source [%s] left" % r["source"])

    def fail(self, r, nodes, now, reason, details):
        lost_node, was_active = r["node"], r["state"] in (STARTED, RELOCATING)
        if r["primary"] and was_active:
            # RoutingNodes.failShard: promote an active replica on a live node.
            repl = [c for c in self.copies(r["index"], r["shard"])
                    if not c["primary"] and c["state"] in (STARTED, RELOCATING) and c is not r and c["node"] in nodes]
            if repl:
                repl[0]["primary"] = True
                r["primary"] = False
        r.update(unassigned_row(r["index"], r["shard"], r["primary"], reason, now, details))
        if was_active and self.active_primary(r["index"], r["shard"]) is not None:
            ins = self.in_sync(r["index"], r["shard"])
            if lost_node in ins:
                ins.remove(lost_node)

    def finish_recoveries(self, nodes, now):
        for r in self.routing:
            if r["state"] == INITIALIZING and now - r["since"] >= self.recovery_seconds:
                r["state"], r["since"], r["source"], r["recovery"] = STARTED, now, None, None
                ins = self.in_sync(r["index"], r["shard"])
                if r["node"] not in ins:
                    ins.append(r["node"])
            elif r["state"] == RELOCATING and now - r["since"] >= self.recovery_seconds:
                ins = self.in_sync(r["index"], r["shard"])
                if r["node"] in ins:
                    ins.remove(r["node"])
                if r["relocating_node"] not in ins:
                    ins.append(r["relocating_node"])
                r["node"], r["relocating_node"], r["state"], r["since"] = r["relocating_node"], None, STARTED, now

    def allocate_unassigned(self, nodes, now):
        data = sorted((n for n in nodes.values() if is_data(n)), key=lambda n: n["id"])
        for primary in (True, False):
            for r in [r for r in self.routing if r["state"] == UNASSIGNED and r["primary"] == primary]:
                ins = self.in_sync(r["index"], r["shard"])
                new = primary and not ins
                if primary and not new:
                    # PrimaryShardAllocator: only a node holding an in-sync copy.
                    cands = [n for n in data if n["id"] in ins]
                else:
                    cands = data
                n = self.best_node(r, nodes, cands, new_index=new)
                if n is None:
                    # UnassignedInfo.AllocationStatus: why the last round left it.
                    r["allocation_status"] = "no_valid_shard_copy" if primary and not new and not cands else "deciders_no"
                    continue
                act = self.active_primary(r["index"], r["shard"])
                r.update({"state": INITIALIZING, "node": n["id"], "since": now, "unassigned_reason": None, "unassigned_details": None,
                          "allocation_status": None,
                          "recovery": "empty" if new else ("existing" if primary else "peer"),
                          "source": None if primary else act["node"]})

    def move_shards(self, nodes, now):
        for r in [r for r in self.routing if r["state"] == STARTED]:
            if r["node"] not in nodes or self.can_remain(r, nodes) is None:
                continue
            limit = int(self.setting("cluster.routing.allocation.node_concurrent_recoveries", 2))
            if self.recoveries(r["node"])[1] >= limit:
                continue  # ThrottlingAllocationDecider: outgoing recoveries
            cands = [n for n in sorted(nodes.values(), key=lambda n: n["id"]) if n["id"] != r["node"]]
            n = self.best_node(r, nodes, cands)
            if n is None:
                continue
            r["state"], r["relocating_node"], r["since"] = RELOCATING, n["id"], now

    def rebalance(self, nodes, now):
        """BalancedShardsAllocator.balance, reduced: once every shard is
        active (cluster.routing.allocation.allow_rebalance indices_all_active)
        and rebalancing is enabled, move one started copy per round from the
        heaviest to the lightest node that accepts it, while their weights
        differ by more than the threshold (cluster.routing.allocation
        .balance.threshold, 1.0)."""
        if self.setting("cluster.routing.rebalance.enable", "all") == "none":
            return
        if any(r["state"] != STARTED for r in self.routing):
            return
        data = sorted((n for n in nodes.values() if is_data(n)), key=lambda n: n["id"])
        for index in sorted(self.meta["indices"]):
            w = {n["id"]: self.weight(n["id"], index) for n in data}
            for heavy in sorted(data, key=lambda n: -w[n["id"]]):
                for light in sorted(data, key=lambda n: w[n["id"]]):
                    if w[heavy["id"]] - w[light["id"]] <= 1.0:
                        break
                    for r in self.routing:
                        if r["index"] == index and r["node"] == heavy["id"] and self.can_remain(r, nodes) is None \
                                and self.can_allocate(r, light, nodes) is None:
                            r["state"], r["relocating_node"], r["since"] = RELOCATING, light["id"], now
                            return

    # --- views ------------------------------------------------------------------------
    def shard_health(self, index, shard):
        copies = self.copies(index, shard)
        prim = next((c for c in copies if c["primary"]), None)
        if prim and prim["state"] in (STARTED, RELOCATING):
            return "green" if all(c["state"] in (STARTED, RELOCATING) for c in copies) else "yellow"
        # ClusterShardHealth.getInactivePrimaryHealth: a new index's primary is
        # yellow while it is being allocated, red once the deciders said NO.
        if not self.in_sync(index, shard) and prim and (prim["state"] == INITIALIZING or (
                prim.get("unassigned_reason") == "INDEX_CREATED" and prim.get("allocation_status") != "deciders_no")):
            return "yellow"
        return "red"

    def index_health(self, index):
        worst = "green"
        for i in range(self.meta["indices"][index]["number_of_shards"]):
            h = self.shard_health(index, i)
            if h == "red" or (h == "yellow" and worst == "green"):
                worst = h
        return worst

    def health(self, nodes):
        status = "green"
        for name in self.meta["indices"]:
            h = self.index_health(name)
            if h == "red" or (h == "yellow" and status == "green"):
                status = h
        count = lambda pred: sum(1 for r in self.routing if pred(r))  # noqa: E731
        active = count(lambda r: r["state"] in (STARTED, RELOCATING))
        total = len(self.routing)
        return {"status": status, "number_of_nodes": len(nodes), "number_of_data_nodes": sum(1 for n in nodes.values() if is_data(n)),
                "active_primary_shards": count(lambda r: r["primary"] and r["state"] in (STARTED, RELOCATING)),
                "active_shards": active, "relocating_shards": count(lambda r: r["state"] == RELOCATING),
                "initializing_shards": count(lambda r: r["state"] == INITIALIZING),
                "unassigned_shards": count(lambda r: r["state"] == UNASSIGNED), "delayed_unassigned_shards": 0,
                "active_shards_percent_as_number": 100.0 * active / total if total else 100.0}

    def cat_shards(self, nodes):
        rows = []
        for name in sorted(self.meta["indices"]):
            for r in sorted((r for r in self.routing if r["index"] == name), key=lambda r: (r["shard"], not r["primary"])):
                n = nodes.get(r["node"]) if r["node"] else None
                node = None
                if n:
                    node = n["name"]
                    if r["state"] == RELOCATING and r["relocating_node"] in nodes:
                        t = nodes[r["relocating_node"]]
                        node += " -> %s %s %s" % (t["ip"], t["id"], t["name"])  # RestShardsAction
                rows.append({"index": name, "shard": str(r["shard"]), "prirep": "p" if r["primary"] else "r", "state": r["state"],
                             "docs": "0" if n else None, "store": "225b" if n else None, "ip": n["ip"] if n else None,
                             "id": n["id"] if n else None, "node": node,
                             "unassigned.reason": r.get("unassigned_reason")})
        return rows

    def cat_indices(self):
        rows = []
        for name in sorted(self.meta["indices"]):
            m = self.meta["indices"][name]
            rows.append({"health": self.index_health(name), "status": "open", "index": name, "uuid": m["uuid"],
                         "pri": str(m["number_of_shards"]), "rep": str(m["number_of_replicas"]), "docs.count": "0",
                         "docs.deleted": "0", "store.size": "225b", "pri.store.size": "225b"})
        return rows

    def restore_routing(self, now):
        """After a full restart: every copy unassigned (CLUSTER_RECOVERED);
        primaries return to nodes with in-sync copies as they join."""
        self.routing = []
        for name, m in sorted(self.meta["indices"].items()):
            for i in range(m["number_of_shards"]):
                for p in [True] + [False] * m["number_of_replicas"]:
                    self.routing.append(unassigned_row(name, i, p, "CLUSTER_RECOVERED", now))


def unassigned_row(index, shard, primary, reason, now, details=None):
    return {"index": index, "shard": shard, "primary": primary, "state": UNASSIGNED, "node": None, "relocating_node": None,
            "since": now, "unassigned_reason": reason, "unassigned_details": details, "source": None, "recovery": None,
            "allocation_status": None}


def validate_index_name(name):
    # MetadataCreateIndexService.validateIndexOrAliasName / validateIndexName
    bad = ["\\", "/", "*", "?", '"', "<", ">", "|", " ", ",", "#"]
    if any(c in name for c in bad):
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], must not contain the following characters %s" % (
            name, "[" + ", ".join(c if c != " " else " " for c in bad) + "]"), index=name)
    if name != name.lower():
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], must be lowercase" % name, index=name)
    if name[:1] in ("_", "-", "+"):
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], must not start with '_', '-', or '+'" % name, index=name)
    if name in (".", ".."):
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], must not be '.' or '..'" % name, index=name)
    if len(name.encode()) > 255:
        raise ESError(400, "invalid_index_name_exception", "Invalid index name [%s], index name is too long, (%d > 255)" % (name, len(name.encode())), index=name)


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def nest(flat):
    out = {}
    for key, value in sorted(flat.items()):
        cur = out
        parts = key.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out


def json_scalar(v):
    # Settings are strings in Elasticsearch: 1 and true come back "1" and "true".
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def int_setting(settings, key, default, low, high):
    v = settings.get(key, default)
    try:
        n = int(str(v))
    except ValueError:
        raise ESError(400, "illegal_argument_exception", "Failed to parse value [%s] for setting [%s]" % (v, key))
    if n < low:
        raise ESError(400, "illegal_argument_exception", "Failed to parse value [%s] for setting [%s] must be >= %d" % (v, key, low))
    if high is not None and n > high:
        raise ESError(400, "illegal_argument_exception", "Failed to parse value [%s] for setting [%s] must be <= %d" % (v, key, high))
    return n
