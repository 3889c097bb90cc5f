"""The cluster key layout: a topic's keys share one slot; topics spread; URLs parse."""

from hypothesis import given
from hypothesis import strategies as st
from redis.cluster import key_slot

from quantum_core._redis import cluster_settings
from quantum_core.transports.redis.names import ClusterNames, RedisNames

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Zs", "Cc"]), min_size=1, max_size=30
)


@given(prefix=NAMES, topic=NAMES, group=NAMES, event_id=NAMES)
def test_every_key_of_a_topic_is_in_one_slot(prefix, topic, group, event_id):
    names = ClusterNames(prefix)
    keys = [
        names.stream(topic),
        names.dead_letters(topic),
        names.handled(topic, group, event_id),
    ]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    assert names.topic_of(names.stream(topic)) == topic


def test_topics_spread_over_slots_and_single_node_names_stay_as_they_were():
    names = ClusterNames("trading")
    slots = {key_slot(names.stream(f"topic-{n}").encode()) for n in range(100)}
    assert len(slots) > 90
    single = RedisNames("trading")
    assert single.stream("orders") == "trading:stream:orders"
    assert single.dead_letters("orders") == "trading:dead:orders"
    assert single.handled("orders", "risk:h", "e1") == "trading:done:risk:h:e1"
    assert names.stream("orders") == "{trading:orders}:stream"
    assert names.stream_pattern() == "{trading:*}:stream"
    assert RedisNames("a*b").stream_pattern() == "a\\*b:stream:*"


def test_a_cluster_url_gives_every_node_and_redis_py_s_options():
    startup, settings = cluster_settings(
        "rediss+cluster://user:pw@h1:7000,[::1]:7001/0?socket_timeout=3", owner="test"
    )
    assert startup == [("h1", 7000), ("::1", 7001)]
    assert settings["ssl"] is True
    assert settings["username"] == "user"
    assert settings["password"] == "pw"  # noqa: S105 - a fake password
    assert settings["socket_timeout"] == 3.0
    assert settings["decode_responses"] is False


HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
NODES = st.lists(st.tuples(HOSTS, st.integers(1, 65535)), min_size=1, max_size=6)


@given(nodes=NODES, tls=st.booleans(), user=st.sampled_from(["", "ops:pw@", ":pw@"]))
def test_any_list_of_nodes_parses_back_to_itself(nodes, tls, user):
    scheme = "rediss+cluster" if tls else "redis+cluster"
    url = f"{scheme}://{user}" + ",".join(f"{host}:{port}" for host, port in nodes)
    startup, settings = cluster_settings(url, owner="test")
    assert startup == [(host.strip("[]"), port) for host, port in nodes]
    assert settings.get("ssl", False) is tls
    assert settings.get("password") == ("pw" if user else None)
