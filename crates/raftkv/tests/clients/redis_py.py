"""redis-py against running raftkv nodes: RESP2 and RESP3 connections,
the commands applications and redis-py itself send, and a pipeline; with
--cluster, redis-py's RedisCluster against a sharded deployment (it reads
CLUSTER SLOTS and parses COMMAND for every command's key positions).

Usage: python3 redis_py.py HOST:PORT [HOST:PORT ...]
       python3 redis_py.py --cluster HOST:PORT
Run by crates/raftkv/tests/clients.rs. Exit status 0 when every check
passes; otherwise a traceback names the failing check.
"""

import sys

import redis


def check(endpoint, protocol):
    host, port = endpoint.rsplit(":", 1)
    r = redis.Redis(
        host=host,
        port=int(port),
        protocol=protocol,
        socket_timeout=20,
        decode_responses=True,
        client_name=f"redis-py-resp{protocol}",
    )
    tag = f"{endpoint} resp{protocol}"
    assert r.ping() is True, tag
    key = f"py:{protocol}:{port}"
    assert r.set(key, "v1") is True, tag
    assert r.get(key) == "v1", tag
    assert r.append(key, "23") == 4, tag
    assert r.exists(key, "py:missing") == 1, tag
    assert r.delete(key, "py:missing") == 1, tag
    assert r.get(key) is None, tag

    info = r.info()
    assert info["redis_version"].startswith("7."), (tag, info.get("redis_version"))
    assert int(info["connected_clients"]) >= 1, tag
    assert int(info["used_memory"]) > 0, tag
    assert "uptime_in_seconds" in r.info("server"), tag

    assert r.client_getname() == f"redis-py-resp{protocol}", tag
    assert r.client_setname("renamed") is True, tag
    assert r.client_getname() == "renamed", tag
    me = r.client_id()
    assert any(int(c["id"]) == me and c["name"] == "renamed" for c in r.client_list()), tag
    assert int(r.client_info()["id"]) == me, tag

    assert r.config_get("databases") == {"databases": "1"}, tag
    assert r.echo("hello") == "hello", tag
    seconds, micros = r.time()
    assert seconds > 1_600_000_000 and 0 <= micros < 1_000_000, tag
    assert r.command_count() > 10, tag
    commands = r.command()
    assert "get" in commands, tag
    assert commands["get"]["arity"] == 2, (tag, commands["get"])

    pipe = r.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"py:pipe:{protocol}:{i}", str(i))
    for i in range(50):
        pipe.get(f"py:pipe:{protocol}:{i}")
    replies = pipe.execute()
    assert replies[:50] == [True] * 50, (tag, replies[:50])
    assert replies[50:] == [str(i) for i in range(50)], (tag, replies[50:])
    r.close()


def check_cluster(endpoint, protocol):
    from redis.cluster import RedisCluster

    host, port = endpoint.rsplit(":", 1)
    rc = RedisCluster(
        host=host,
        port=int(port),
        protocol=protocol,
        socket_timeout=20,
        decode_responses=True,
    )
    tag = f"cluster {endpoint} resp{protocol}"
    # FLUSHALL, DBSIZE, KEYS and SCAN go to every primary, each answering
    # for the slots it is primary of; redis-py merges.
    flushed = rc.flushall()
    assert flushed is True or flushed == "OK" or (isinstance(flushed, dict) and all(flushed.values())), (tag, flushed)
    # redis-py 8 sends DBSIZE and KEYS to its default node only (against a
    # Redis Cluster too); asked of every primary, it sums / concatenates.
    primaries = RedisCluster.PRIMARIES
    assert rc.dbsize(target_nodes=primaries) == 0, tag
    keys = [f"pyc:{protocol}:{i}" for i in range(100)]
    for k in keys:
        assert rc.set(k, k) is True, (tag, k)
    assert [rc.get(k) for k in keys] == keys, tag
    # Keys in many slots: redis-py splits the pipeline per node.
    pipe = rc.pipeline()
    for k in keys:
        pipe.get(k)
    assert pipe.execute() == keys, tag
    assert rc.delete(*keys[:10]) == 10, tag
    rc.hset(f"pyc:{protocol}:hash", "f", "v")
    left = sorted(keys[10:])
    assert rc.dbsize(target_nodes=primaries) == 91, tag
    listed = rc.keys(f"pyc:{protocol}:[0-9]*", target_nodes=primaries)
    assert sorted(listed) == left, (tag, len(listed))
    scanned = list(rc.scan_iter(match=f"pyc:{protocol}:*", count=7, _type="string"))
    assert sorted(scanned) == left, (tag, len(scanned))
    assert sorted(rc.scan_iter(_type="hash")) == [f"pyc:{protocol}:hash"], tag
    assert rc.randomkey() in set(left) | {f"pyc:{protocol}:hash"}, tag
    nodes = rc.get_nodes()
    assert len(nodes) >= 2, (tag, nodes)
    info = rc.info("server", target_nodes=RedisCluster.PRIMARIES)
    assert all(v["redis_mode"] == "cluster" for v in info.values()), (tag, info)
    rc.close()


def main():
    args = sys.argv[1:]
    if args and args[0] == "--cluster":
        for protocol in (2, 3):
            check_cluster(args[1], protocol)
    else:
        for endpoint in args:
            for protocol in (2, 3):
                check(endpoint, protocol)
    print(f"redis-py {redis.__version__}: all checks passed")


if __name__ == "__main__":
    main()
