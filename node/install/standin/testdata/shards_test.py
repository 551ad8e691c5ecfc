# Unit tests of the stand-in's shard model (files/standin_shards.py), run by
# TestStandInShardModel: python3 shards_test.py <dir holding standin_shards.py>.
import sys
import unittest

sys.path.insert(0, sys.argv.pop(1))
import standin_shards as S  # noqa: E402


def node(i, zone=None, roles=("data", "master")):
    return {"id": "id-%s" % i, "name": "es-%s" % i, "ip": "10.0.0.%s" % i, "roles": list(roles),
            "attributes": {"aws_availability_zone": zone} if zone else {}}


def nodes(*ns):
    return {n["id"]: n for n in ns}


class Cluster:
    """A model driven the way the master drives it: a reroute per second."""

    def __init__(self, live, major=8, node_settings=None):
        self.m = S.Model(None, None, major, node_settings or {}, recovery_seconds=1.0)
        self.live, self.now = live, 100.0

    def settle(self, rounds=30):
        for _ in range(rounds):
            self.now += 1
            self.m.reroute(self.live, self.now)

    def on(self, nid):
        return sorted((r["index"], r["shard"], r["primary"]) for r in self.m.routing if r["node"] == nid)

    def status(self):
        return self.m.health(self.live)["status"]


class ShardModelTest(unittest.TestCase):
    def test_create_index_allocates_primaries_then_replicas_never_two_copies_per_node(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        r = c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u1", c.now)
        self.assertEqual(r["index"], "logs")
        self.assertEqual(c.status(), "yellow")  # new primaries not active yet: yellow, not red
        c.now += 1
        c.m.reroute(c.live, c.now)
        self.assertEqual(c.m.health(c.live)["initializing_shards"], 3)
        c.settle()
        h = c.m.health(c.live)
        self.assertEqual((h["status"], h["active_shards"], h["active_primary_shards"], h["unassigned_shards"]), ("green", 6, 3, 0))
        for i in range(3):
            holders = [r["node"] for r in c.m.copies("logs", i)]
            self.assertEqual(len(set(holders)), 2, holders)
            self.assertEqual(sorted(c.m.in_sync("logs", i)), sorted(holders))
        self.assertEqual(sorted(len(c.on(n)) for n in c.live), [2, 2, 2])

    def test_defaults_and_validation(self):
        for major, shards in ((6, 5), (7, 1)):
            c = Cluster(nodes(node(1)), major=major)
            c.m.create_index("x", {}, "u", c.now)
            self.assertEqual(c.m.meta["indices"]["x"]["number_of_shards"], shards)
            self.assertEqual(c.m.meta["indices"]["x"]["number_of_replicas"], 1)
        c = Cluster(nodes(node(1)))
        c.m.create_index("x", {"settings": {"index": {"number_of_shards": "2"}}}, "u", c.now)
        with self.assertRaises(S.ESError) as e:
            c.m.create_index("x", {}, "u2", c.now)
        self.assertEqual((e.exception.status, e.exception.etype), (400, "resource_already_exists_exception"))
        self.assertEqual(e.exception.reason, "index [x/u] already exists")
        for bad, why in (("Logs", "must be lowercase"), ("_x", "must not start with '_', '-', or '+'"), ("a,b", "must not contain")):
            with self.assertRaises(S.ESError) as e:
                c.m.create_index(bad, {}, "u", c.now)
            self.assertIn(why, e.exception.reason)
        with self.assertRaises(S.ESError) as e:
            c.m.create_index("y", {"settings": {"number_of_shards": 0}}, "u", c.now)
        self.assertIn("must be >= 1", e.exception.reason)
        # One node: the replica has nowhere to go (same shard), the index stays yellow.
        c.settle()
        self.assertEqual(c.status(), "yellow")
        self.assertEqual(c.m.health(c.live)["unassigned_shards"], 2)

    def test_exclusion_relocates_everything_off_the_node_and_in_sync_follows(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": "es-1"}}, lambda k: None)
        self.assertEqual(c.m.can_remain(next(r for r in c.m.routing if r["node"] == "id-1"), c.live),
                         'node matches cluster setting [cluster.routing.allocation.exclude] filters [_name:"es-1"]')
        c.now += 1
        c.m.reroute(c.live, c.now)
        h = c.m.health(c.live)
        self.assertEqual(h["relocating_shards"], 2)
        self.assertEqual(h["status"], "green")  # relocating copies are active
        rows = c.m.cat_shards(c.live)
        relo = [r for r in rows if r["state"] == "RELOCATING"]
        self.assertTrue(all(r["node"].startswith("es-1 -> 10.0.0.") for r in relo), relo)
        c.settle()
        self.assertEqual(c.on("id-1"), [])
        self.assertEqual(c.status(), "green")
        for i in range(3):
            self.assertNotIn("id-1", c.m.in_sync("logs", i))
        # Nothing is allocated back while the exclusion stays; clearing it (null) is allowed.
        r = c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": None}}, lambda k: None)
        self.assertEqual(r, {"acknowledged": True, "persistent": {}, "transient": {}})
        self.assertNotIn("cluster.routing.allocation.exclude._name", c.m.meta["persistent"])

    def test_exclusion_by_ip_and_id_and_transient_over_persistent(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        c.m.create_index("a", {"settings": {"number_of_shards": 2, "number_of_replicas": 0}}, "u", c.now)
        c.settle()
        c.m.update_settings({"transient": {"cluster": {"routing": {"allocation": {"exclude": {"_ip": "10.0.0.2,10.0.0.3"}}}}}}, lambda k: None)
        c.settle()
        self.assertEqual([n for n in c.live if c.on(n)], ["id-1"])
        c.m.update_settings({"transient": {"cluster.routing.allocation.exclude._ip": None, "cluster.routing.allocation.exclude._id": "id-1"}}, lambda k: None)
        c.settle()
        self.assertEqual(c.on("id-1"), [])
        with self.assertRaises(S.ESError) as e:
            c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._ip": "not-an-ip"}}, lambda k: None)
        self.assertIn("invalid IP address [not-an-ip]", e.exception.reason)
        with self.assertRaises(S.ESError) as e:
            c.m.update_settings({"persistent": {"no.such": "x"}}, lambda k: "unknown")
        self.assertEqual(e.exception.reason, "persistent setting [no.such], not recognized")

    def test_excluding_every_node_leaves_shards_where_they_are(self):
        c = Cluster(nodes(node(1), node(2)))
        c.m.create_index("a", {"settings": {"number_of_shards": 1, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": "es-*"}}, lambda k: None)
        c.settle()
        self.assertEqual(c.status(), "green")
        self.assertEqual(len(c.on("id-1")) + len(c.on("id-2")), 2)

    def test_awareness_one_copy_per_zone_and_missing_attribute(self):
        aw = {"cluster.routing.allocation.awareness.attributes": "aws_availability_zone"}
        c = Cluster(nodes(node(1, "a"), node(2, "b"), node(3, "a")), node_settings=aw)
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        self.assertEqual(c.status(), "green")
        for i in range(3):
            zones = sorted(c.live[r["node"]]["attributes"]["aws_availability_zone"] for r in c.m.copies("logs", i))
            self.assertEqual(zones, ["a", "b"])
        self.assertEqual(len(c.on("id-2")), 3)  # the only node in zone b holds one copy of each shard
        # A node without the attribute gets nothing: one node alone, red.
        lone = Cluster(nodes(node(9)), node_settings=aw)
        lone.m.create_index("x", {}, "u", lone.now)
        lone.settle()
        self.assertEqual(lone.status(), "red")  # a new primary the deciders refuse is red, not yellow
        self.assertIn("node does not contain the awareness attribute [aws_availability_zone]",
                      lone.m.can_allocate(lone.m.routing[0], node(9), lone.live, new_index=True))

    def test_awareness_when_a_zone_empties_copies_may_share_the_other(self):
        aw = {"cluster.routing.allocation.awareness.attributes": "aws_availability_zone"}
        c = Cluster(nodes(node(1, "a"), node(2, "b"), node(3, "a")), node_settings=aw)
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": "es-2"}}, lambda k: None)
        c.settle()
        # Zone b still has a node (es-2, excluded): at most one copy per zone, nowhere to go.
        self.assertEqual(len(c.on("id-2")), 3)
        self.assertIn("there are [2] copies of this shard and [2] values for attribute [aws_availability_zone]",
                      c.m.can_allocate(next(r for r in c.m.routing if r["node"] == "id-2"), c.live["id-3"], c.live) or "")
        # Zone b gone: one value left, both copies may live in zone a (on two nodes).
        del c.live["id-2"]
        c.settle()
        self.assertEqual(c.status(), "green")
        # Forced awareness keeps counting zone b: the replicas stay unassigned.
        f = Cluster(nodes(node(1, "a"), node(3, "a")), node_settings=dict(aw, **{"cluster.routing.allocation.awareness.force.aws_availability_zone.values": "a,b"}))
        f.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", f.now)
        f.settle()
        self.assertEqual((f.status(), f.m.health(f.live)["unassigned_shards"]), ("yellow", 3))

    def test_node_left_promotes_replica_and_recovers_a_new_one(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        primaries_on_1 = [s for (_, s, p) in c.on("id-1") if p]
        del c.live["id-1"]
        c.now += 1
        c.m.reroute(c.live, c.now)
        self.assertIn(c.status(), ("yellow",))
        for s in primaries_on_1:
            p = next(r for r in c.m.copies("logs", s) if r["primary"])
            self.assertIn(p["node"], c.live)
        c.settle()
        self.assertEqual(c.status(), "green")
        self.assertEqual(c.m.health(c.live)["active_shards"], 6)

    def test_two_nodes_lost_together_lose_shards_for_good(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        both = {i for i in range(3) if {r["node"] for r in c.m.copies("logs", i)} == {"id-1", "id-2"}}
        self.assertTrue(both)
        del c.live["id-1"], c.live["id-2"]
        c.settle()
        self.assertEqual(c.status(), "red")
        h = c.m.health(c.live)
        self.assertEqual(h["active_primary_shards"], 3 - len(both))
        for i in both:
            self.assertEqual(c.m.shard_health("logs", i), "red")
            p = next(r for r in c.m.copies("logs", i) if r["primary"])
            self.assertEqual((p["state"], p["unassigned_reason"]), ("UNASSIGNED", "NODE_LEFT"))
        # A new node does not bring the copy back: only a node with an in-sync copy could.
        c.live["id-4"] = node(4)
        c.settle()
        self.assertEqual(c.status(), "red")
        # The lost node coming back (same id: same data path) does.
        c.live["id-1"] = node(1)
        c.settle()
        self.assertEqual(c.status(), "green")

    def test_drain_then_terminate_keeps_every_shard(self):
        c = Cluster(nodes(node(1), node(2), node(3)))
        c.m.create_index("logs", {"settings": {"number_of_shards": 3, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        for victim in ("id-1", "id-2"):
            c.live["id-new-" + victim] = node("n" + victim[-1])
            c.live["id-new-" + victim]["id"] = "id-new-" + victim
            c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": c.live[victim]["name"]}}, lambda k: None)
            c.settle()
            self.assertEqual(c.on(victim), [])
            del c.live[victim]
            c.settle()
            self.assertEqual(c.status(), "green")
        self.assertEqual(c.m.health(c.live)["active_shards"], 6)

    def test_throttling_limits_concurrent_relocations(self):
        c = Cluster(nodes(node(1), node(2)))
        c.m.create_index("a", {"settings": {"number_of_shards": 6, "number_of_replicas": 0}}, "u", c.now)
        c.settle()
        c.m.update_settings({"persistent": {"cluster.routing.allocation.exclude._name": "es-1"}}, lambda k: None)
        c.now += 1
        c.m.reroute(c.live, c.now)
        self.assertLessEqual(c.m.health(c.live)["relocating_shards"], 2)
        c.settle()
        self.assertEqual(c.on("id-1"), [])

    def test_allocation_enable_none_stops_new_replicas(self):
        c = Cluster(nodes(node(1), node(2)))
        c.m.update_settings({"transient": {"cluster.routing.allocation.enable": "primaries"}}, lambda k: None)
        c.m.create_index("a", {"settings": {"number_of_shards": 1, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        self.assertEqual(c.status(), "yellow")
        c.m.update_settings({"transient": {"cluster.routing.allocation.enable": None}}, lambda k: None)
        c.settle()
        self.assertEqual(c.status(), "green")

    def test_full_restart_rebuilds_routing_from_metadata(self):
        c = Cluster(nodes(node(1), node(2)))
        c.m.create_index("a", {"settings": {"number_of_shards": 2, "number_of_replicas": 1}}, "u", c.now)
        c.settle()
        meta = c.m.meta
        m2 = S.Model(meta, None, 8)
        m2.restore_routing(c.now)
        self.assertEqual(m2.health({})["status"], "red")
        live = nodes(node(1))
        for t in range(5):
            m2.reroute(live, c.now + 2 * t)
        self.assertEqual(m2.health(live)["status"], "yellow")  # primaries back on es-1's in-sync copies


if __name__ == "__main__":
    unittest.main(verbosity=1)
